"""The argument parser's wording: no prefix abbreviations, one-line errors with a hint of what to type."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml
from lightning.pytorch.cli import ArgsType, LightningArgumentParser

from mnist_lightning.checkpoint.io import other_kind
from mnist_lightning.errors import ConfigError, one_line
from mnist_lightning.models import MODEL_NAMES

CLASS_OPTIONS = {
    "--model": ", ".join(MODEL_NAMES),
    "--model.optimizer": "a torch.optim class, e.g. SGD, Adam, AdamW, RMSprop",
    "--model.scheduler": "a torch.optim.lr_scheduler class, e.g. StepLR, CosineAnnealingLR, OneCycleLR, "
    "torch.optim.lr_scheduler.ReduceLROnPlateau, or null",
    "--trainer.logger": "TensorBoardLogger, CSVLogger, false",
}


class MNISTArgumentParser(LightningArgumentParser):
    """No prefix abbreviations (``--trainer.max_epoch`` is an error, not ``max_epochs``); one-line errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {with_hint(one_line(message))} (see `{prog} --help`)\n")
        sys.exit(2)


NUMBER_OPTIONS = {"--model.lr": "a positive number (e.g. 3e-3 with Adam, 0.1 with SGD)"}
"""What a numeric option takes, where a refused number's message should say more than its type."""
NOT_A_NUMBER = re.compile(r"expected float(?: or null)?, got '([-+]?(?:nan|inf|infinity))'", re.IGNORECASE)


def with_hint(line: str) -> str:
    """What to type instead, for the options that take a class or a number.

    >>> with_hint("--model.lr: expected float, got 'nan'")
    "--model.lr: expected a positive number (e.g. 3e-3 with Adam, 0.1 with SGD), got 'nan'"
    """
    option, _, said = line.partition(": ")
    number = NOT_A_NUMBER.search(said)
    if number:
        return f"{option}: expected {NUMBER_OPTIONS.get(option, 'a finite number')}, got {number.group(1)!r}"
    missing = re.match(r"missing required argument\(s\) (\w+)", said)
    if missing:
        return f"{line} (add {option}.{missing.group(1)} VALUE)"
    if "is not a class this option takes" in said and option in CLASS_OPTIONS:
        return f"{line}; accepted: {CLASS_OPTIONS[option]}"
    return line


def named_subcommand(args: ArgsType) -> str | None:
    """The first positional argument of a command line (the subcommand, if the line is valid), else ``None``.

    >>> named_subcommand(["--config", "fit.yaml", "test", "--ckpt_path", "best"])
    'test'
    >>> named_subcommand(["--help"]) is None
    True
    """
    if not isinstance(args, list | tuple):
        return None
    after_config = False
    for arg in map(str, args):
        if after_config:
            after_config = False
        elif arg in ("-c", "--config"):
            after_config = True
        elif not arg.startswith("-"):
            return arg
    return None


SECTIONS = ("trainer", "data")
"""The parts of a subcommand's config file that hold options by name: a mapping (or null) each."""


def check_config_files(args: ArgsType) -> None:
    """Refuse, naming the file (and the line), a ``--config`` file that is no regular file, is empty, is not YAML
    or holds no mapping of options: jsonargparse's messages name none of it (``Unexpected config:``), and it reads
    a FIFO for ever. A value that names no file is left to jsonargparse (it also takes YAML text itself)."""
    if not isinstance(args, list | tuple):
        return
    args = [str(arg) for arg in args]
    subcommand = named_subcommand(args)
    after = args.index(subcommand) if subcommand in args else len(args)
    for index, arg in enumerate(args):
        name, equals, inline = arg.partition("=")
        if name not in ("-c", "--config"):
            continue
        given = inline if equals else (args[index + 1] if index + 1 < len(args) else None)
        if given:
            _check_config_file(Path(given), nested=index > after)


def _check_config_file(path: Path, nested: bool) -> None:
    kind = other_kind(path)
    if kind is not None:
        raise ConfigError(f"--config {path} is not a regular file ({kind}): give a YAML file of options")
    if not path.is_file():
        return
    try:
        text = path.read_text()
        loaded = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config {path}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or one_line(str(err))
        raise ConfigError(f"--config {path}: not valid YAML{where}: {problem}; fix the file or pass another") from None
    example = "e.g. trainer: {max_epochs: 3}"
    if loaded is None:
        raise ConfigError(f"--config {path} is empty: expected a mapping of options ({example})")
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"--config {path} holds {type(loaded).__name__} {str(loaded)[:60]!r}, expected a mapping of options "
            f"({example})"
        )
    for section in SECTIONS if nested else ():
        value = loaded.get(section)
        if value is not None and not isinstance(value, dict):
            raise ConfigError(
                f"--config {path}: {section} is {value!r}, expected a mapping of {section} options ({example})"
            )
