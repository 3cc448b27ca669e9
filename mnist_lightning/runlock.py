"""One run, one writer: a run folder is locked while a process trains in it.

The lock is ``fcntl.flock`` on ``<run>/.lock``: the kernel drops it when the process ends, however it ends
(a SIGKILL or a power cut leaves no stale lock to clean up by hand).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mnist_lightning.errors import ConfigError

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}


def lock_run(folder: Path) -> None:
    """Take the run folder's lock for this process, or fail in one line when another process holds it."""
    folder = folder.resolve()
    if folder in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        who = f"process {holder}" if holder.isdigit() else "another process"
        raise ConfigError(
            f"{folder} is being trained by {who}: wait for it to end (or stop it), then run `fit --ckpt_path last`"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[folder] = fd


def release_runs() -> None:
    """Give back every lock this process holds (the in-process CLI runs many fits in one process)."""
    while _held:
        _, fd = _held.popitem()
        os.close(fd)
