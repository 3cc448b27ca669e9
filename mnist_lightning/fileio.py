"""Atomic file writes (readers only ever see the old file or the complete new one) and file locks.

Lightning writes a checkpoint through a temporary file in ``$TMPDIR`` and moves it into place; across
filesystems that move is a copy, so a kill leaves a truncated file (and an orphaned temporary file). Here
every checkpoint, export and CSV is written in its own folder, fsynced and renamed over the target. This
module imports nothing from the project, so anything that writes files can use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO

from filelock import FileLock, Timeout

PARTIAL = re.compile(r"^\..+\.(\d+)\.partial$")
CAUSES = {
    errno.EACCES: "the folder is not writable",
    errno.EPERM: "the folder is not writable",
    errno.EROFS: "the folder is on a read-only filesystem",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENAMETOOLONG: "the name is too long",
}
NOT_A_LOCK_FILE = {errno.ELOOP: "a symbolic link", errno.EISDIR: "a folder"}


class WriteError(OSError):
    """A file could not be written; the message names the path, the cause and what to do."""


def remove_orphans(folder: Path) -> None:
    """Delete partial files that a killed writer left behind (those whose process is gone)."""
    for path in folder.glob(".*.partial"):
        match = PARTIAL.match(path.name)
        if match and not process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (the writer of a partial file)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def hold_lock(path: Path, timeout: float = -1) -> FileLock:
    """Take the lock on ``path`` (waiting up to ``timeout`` seconds, -1 for ever) and return it held.

    It is filelock's ``flock``: the kernel drops it when the holder ends, however it ends, so a killed process
    leaves no stale lock. filelock opens the file without following a symbolic link, so a link planted at ``path``
    cannot make a lock create or write a file elsewhere. Raises ``filelock.Timeout`` when another holder keeps it,
    and a one-line :class:`WriteError` when ``path`` cannot be a lock file.
    """
    lock = FileLock(path, thread_local=False)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise
    except OSError as err:
        if err.errno in NOT_A_LOCK_FILE:
            raise WriteError(
                f"Cannot lock {path}: it is {NOT_A_LOCK_FILE[err.errno]}, not a file (a lock never leaves its "
                "folder); remove it: a lock file holds no data"
            ) from None
        cause = CAUSES.get(err.errno, err.strerror or str(err))
        raise WriteError(f"Cannot lock {path}: {cause}; choose another folder") from None
    return lock


def _write_anonymous_then_link(folder: Path, partial: Path, write: Callable[[IO[bytes]], None]) -> bool:
    """Write an unnamed file in ``folder`` (Linux ``O_TMPFILE``) and only then give it a name.

    A process killed while writing leaves nothing behind. Returns False where the filesystem cannot do it.
    """
    try:
        fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o666)
    except (AttributeError, OSError):
        return False
    with os.fdopen(fd, "wb") as stream:
        write(stream)
        stream.flush()
        os.fsync(fd)
        folder_fd = os.open(folder, os.O_RDONLY)
        try:  # a destination dir fd makes Python call linkat(AT_SYMLINK_FOLLOW), which names the open file
            os.link(f"/proc/self/fd/{fd}", partial.name, dst_dir_fd=folder_fd, follow_symlinks=True)
        except OSError:
            return False
        finally:
            os.close(folder_fd)
    return True


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` so that readers only ever see the old file or the complete new one.

    The data goes to an unnamed file in the same folder (a named one where ``O_TMPFILE`` is missing), is
    fsynced, named ``.<name>.<pid>.partial`` and renamed over ``path``. A kill leaves no truncated target
    and no half-written file; only a kill in the microseconds between naming and renaming leaves a complete
    partial file behind, which the next write in that folder (or ``--ckpt_path last``) removes.
    """
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"Cannot write {path}: it is a folder. Give a file name, e.g. {path / 'out'}.")
    folder = path.parent
    partial = folder / f".{path.name}.{os.getpid()}.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_orphans(folder)
        if not _write_anonymous_then_link(folder, partial, write):
            with partial.open("wb") as stream:
                write(stream)
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(partial, path)
        _fsync_folder(folder)
    except OSError as err:
        cause = CAUSES.get(err.errno, err.strerror or str(err))
        raise WriteError(f"Cannot write {path}: {cause}. Nothing was written; choose another place.") from None
    finally:
        with contextlib.suppress(OSError):  # the cleanup must not hide why the write failed
            partial.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
