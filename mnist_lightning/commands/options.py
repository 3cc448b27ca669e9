"""What every command's parser shares: usage errors as the project's one-line ``ConfigError`` (exit 2), and the
types of numeric options, which refuse at start a value that would make the command fail later (``inf`` or
``nan`` seconds, a timeout of 0, a count below 1) instead of answering every request with an error."""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from mnist_lightning.errors import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are the project's one-line ``ConfigError``."""

    def __init__(self, prog: str, description: str | None) -> None:
        super().__init__(
            prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
        )

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number from ``low`` (to ``high``).

    >>> whole(1)("3"), whole(1024, 65535)("8000")
    (3, 8000)
    """
    said = f"a whole number from {low}" + (f" to {high}" if high is not None else "")

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not {said}") from None
        if number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"{value} is not {said}")
        return number

    return parse


def seconds(zero: bool = False) -> Callable[[str], float]:
    """A finite number of seconds, above 0 (or 0 too, with ``zero``).

    >>> seconds()("2.5"), seconds(zero=True)("0")
    (2.5, 0.0)
    """
    said = "a finite number of seconds" + (", 0 or more" if zero else " above 0")

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not {said}") from None
        if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
            raise argparse.ArgumentTypeError(f"{value} is not {said}")
        return number

    return parse


def megabytes(value: str) -> int:
    """A size in MB (``0.5``, ``200``) as bytes.

    >>> megabytes("0.5")
    524288
    """
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 < number <= 2**20:  # nan fails too
        raise argparse.ArgumentTypeError(f"{value} is not a size in MB from above 0 to {2**20}")
    return int(number * 2**20)


def named(value: str) -> str:
    """A file or folder name: an empty one is refused (it would mean the current folder: every file in it read, or
    corrections written there).

    >>> named("model.ckpt")
    'model.ckpt'
    """
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty name: give a file or folder")
    return value


def output_file(value: str) -> str:
    """A file a command will write at its end (through :func:`~mnist_lightning.fileio.atomic_write`), checked at
    its start: not a folder, and its nearest existing folder takes a new file (a missing folder below it is
    created then). A refusal now spares a long run that could only fail at its last step.

    >>> output_file("predictions.csv")
    'predictions.csv'
    """
    named(value)
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder: give a file name in it, e.g. {path / 'out'}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: {folder} is a file, not a folder; choose another place")
    try:
        with tempfile.TemporaryFile(dir=folder):  # a probe: what a write there needs, as the user running it
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(
            f"{value}: cannot create a file in {folder} ({err.strerror or err}); choose a folder you can write to"
        ) from None
    return value


RUN_KEYWORDS = ("best", "last")
CHECKPOINT_HELP = "a checkpoint written by train.py fit, or best|last: the latest run's in ./lightning_logs"


def checkpoint_named(given: str | None, option: str = "--ckpt") -> str | None:
    """``best``/``last`` resolved as ``train.py --ckpt_path best|last`` resolves them (the latest run in
    ``./lightning_logs``), said on stderr; any other name as it is."""
    if given not in RUN_KEYWORDS:
        return given
    from mnist_lightning.checkpoint import resolve_checkpoint  # torch and Lightning: only for the commands that load

    path, notes = resolve_checkpoint(given, Path("lightning_logs"), option=option)  # type: ignore[arg-type]
    for note in notes:
        print(f"WARNING: {note}", file=sys.stderr)
    print(f"{option} {given}: {path}", file=sys.stderr)
    return str(path)
