"""One run, one writer: a run folder is locked (``<run>/.lock``) while a process trains in it.

The lock is :func:`mnist_lightning.fileio.hold_lock`'s: a SIGKILL or a power cut leaves no stale lock to clean up
by hand, and a link planted at ``.lock`` is refused, never followed.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from mnist_lightning.errors import ConfigError
from mnist_lightning.fileio import WriteError, hold_lock

LOCK_NAME = ".lock"
_held: dict[Path, FileLock] = {}


def lock_run(folder: Path) -> None:
    """Take the run folder's lock for this process, or fail in one line when another process holds it."""
    folder = folder.resolve()
    if folder in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _held[folder] = hold_lock(folder / LOCK_NAME, timeout=0)
    except Timeout:
        raise ConfigError(
            f"{folder} is being trained by another process: wait for it to end (or stop it), "
            "then run `fit --ckpt_path last`"
        ) from None
    except WriteError as err:
        raise ConfigError(str(err)) from None


def release_runs() -> None:
    """Give back every lock this process holds (the in-process CLI runs many fits in one process)."""
    while _held:
        _held.popitem()[1].release()
