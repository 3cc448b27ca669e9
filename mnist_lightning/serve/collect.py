"""Corrections (``--collect DIR``): drawings the model misread, kept with the digit they are, to fine-tune on.

A correction is saved in torchvision's ImageFolder layout, ``DIR/<digit>/<uuid4>.png``, as the very PNG bytes the
page sent (its whole canvas, as drawn, not the 28x28 the model saw), so that training can preprocess it like any
other image. The server names the file and the digit is one of ``"0"`` to ``"9"``, so no request can write outside
``DIR``; a digit folder that is a link (or a file) is refused, never written through. The folder is bounded (files,
bytes, bytes per image); a correction over a bound is refused and nothing is written. LitServe runs one API
server process per inference worker, so the count and size of the folder are read, checked and updated under
the lock on ``DIR/.lock`` (:func:`mnist_lightning.fileio.hold_lock`, which never follows a link planted there):
the bounds hold across processes, and every file is written atomically
(:func:`mnist_lightning.fileio.atomic_write`): complete or absent.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import HTTPException

from mnist_lightning.errors import ConfigError
from mnist_lightning.fileio import WriteError, atomic_write, hold_lock

LABELS = tuple("0123456789")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_BYTES = 2**20
"""Bytes one correction may have: the page's 280x280 canvas is a PNG of a few kilobytes."""
MAX_FILES = 10_000
MAX_TOTAL_BYTES = 200 * 2**20
LOCK_NAME = ".lock"
ENVELOPE_BYTES = 64 * 1024
"""What a request may carry beyond the image: the label, multipart headers, JSON."""


@dataclass(frozen=True)
class Collection:
    """Where corrections go and how much the folder may hold; kept in ``app.state.collection``."""

    folder: Path
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_files: int = MAX_FILES
    max_bytes: int = MAX_TOTAL_BYTES

    @property
    def max_body_bytes(self) -> int:
        """The largest request body worth reading: the image, base64-encoded (4/3), and its envelope."""
        return self.max_image_bytes * 4 // 3 + ENVELOPE_BYTES

    def info(self) -> dict:
        """What ``GET /info`` and the page say about collecting: the folder by its name only, since every visitor
        reads it (where it lies on the server's disk is the operator's; the server prints it at start)."""
        return {**asdict(self), "folder": self.folder.name}


def open_collection(
    folder: Path, max_image_bytes: int = MAX_IMAGE_BYTES, max_files: int = MAX_FILES, max_bytes: int = MAX_TOTAL_BYTES
) -> Collection:
    """The collection in ``folder``, created if missing; a one-line :class:`ConfigError` when it cannot be written."""
    folder = folder.expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--collect {folder}: is a file, not a folder; pass a folder (it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        hold_lock(folder / LOCK_NAME).release()
    except WriteError as err:
        raise ConfigError(f"--collect {folder}: {err}") from None
    except OSError as err:
        raise ConfigError(
            f"--collect {folder}: cannot write there ({err.strerror or err}); pass a folder you can write to"
        ) from None
    return Collection(folder, max_image_bytes, max_files, max_bytes)


def check_label(label: object) -> str:
    """``label`` when it is exactly one of ``"0"`` to ``"9"``; 422 otherwise."""
    if isinstance(label, str) and label in LABELS:
        return label
    raise HTTPException(422, f'the label must be one digit, "0" to "9", got {repr(label)[:20]}')


def check_png(data: bytes, max_image_bytes: int) -> None:
    """413 for an image over the size limit, 415 for one that is not a PNG (corrections are kept as sent)."""
    if len(data) > max_image_bytes:
        raise HTTPException(
            413, f"the image is {len(data):,} bytes, over the limit of {max_image_bytes:,} per correction"
        )
    if not data.startswith(PNG_SIGNATURE):
        raise HTTPException(415, "a correction is kept as sent, as a PNG: send the drawing as a PNG (the page does)")


def usage(folder: Path) -> tuple[int, int]:
    """How many corrections ``folder`` holds and their bytes: the files in its digit folders (hidden ones aside)."""
    files = size = 0
    for label in LABELS:
        try:
            entries = list(os.scandir(folder / label))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                files += 1
                size += entry.stat(follow_symlinks=False).st_size
    return files, size


def insufficient_storage(err: Exception, folder: Path) -> HTTPException:
    """A 507 for a write in the collection that failed: every visitor reads it, so the files are named within the
    collection (``.lock``, ``7/<uuid>.png``), never by the server's own path."""
    said = str(err).replace(f"{folder}{os.sep}", "").replace(str(folder), "the collection")
    return HTTPException(507, said)


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the collection's lock: one writer at a time, across threads and processes; 507 when ``.lock`` was
    replaced by something that cannot be a lock (the folder is broken: nothing is written)."""
    try:
        lock = hold_lock(folder / LOCK_NAME)
    except WriteError as err:
        raise insufficient_storage(err, folder) from None
    try:
        yield
    finally:
        lock.release()


def check_room(collection: Collection, incoming: int) -> tuple[int, int]:
    """The folder's ``(files, bytes)``; 409 when one more correction of ``incoming`` bytes would pass a limit."""
    files, size = usage(collection.folder)
    if files + 1 > collection.max_files:
        raise HTTPException(
            409,
            f"the folder holds {files:,} corrections, this server's limit of {collection.max_files:,}: fine-tune on "
            "them, then move them away (or restart the server with a higher --collect-max-files)",
        )
    if size + incoming > collection.max_bytes:
        raise HTTPException(
            409,
            f"the folder holds {size:,} bytes of corrections; this one would pass this server's limit of "
            f"{collection.max_bytes:,}: move them away (or restart the server with a higher --collect-max-mb)",
        )
    return files, size


def save(collection: Collection, label: str, png: bytes) -> dict:
    """Write one checked correction as ``<label>/<uuid4>.png``, or refuse it with 409 when the folder is full."""
    with locked(collection.folder):
        files, size = check_room(collection, len(png))
        digit_folder = collection.folder / label
        if digit_folder.is_symlink() or (digit_folder.exists() and not digit_folder.is_dir()):
            raise HTTPException(
                507,
                f"the collection's {label}/ is a link or a file, not a folder of corrections: nothing is written "
                "through it; move it out of the collection",
            )
        name = f"{label}/{uuid.uuid4()}.png"
        try:
            atomic_write(collection.folder / name, lambda stream: stream.write(png))
        except WriteError as err:
            raise insufficient_storage(err, collection.folder) from None
    return {"saved": name, "label": label, "files": files + 1, "bytes": size + len(png)}
