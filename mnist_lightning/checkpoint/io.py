"""Checkpoint files: written atomically and finite, read without running code, and found in a run's folder (``last``:
the newest intact one, ``best``: what the run's ModelCheckpoint chose, as ``--ckpt_path`` and ``--ckpt`` take them).

Lightning's ``TorchCheckpointIO`` moves a file from ``$TMPDIR`` into place (a truncated ``.ckpt`` when killed
across filesystems) and writes NaN weights as happily as any; ``torch.load`` of a foreign checkpoint can run
code. This module closes those gaps; :mod:`.vetting` checks what a checkpoint's hyperparameters name.
"""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from mnist_lightning.errors import CheckpointError, TrainingDivergedError
from mnist_lightning.fileio import atomic_write, remove_orphans


def non_finite_entries(state_dict: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors in ``state_dict`` holding NaN or infinity."""
    return [
        name
        for name, value in state_dict.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()
    ]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, but atomic in the target folder, refusing non-finite weights, and deleting
    only checkpoints in the folders it writes to or reads from.

    ModelCheckpoint deletes the files a checkpoint's ``best_k_models`` names when it rotates its top-k; a
    crafted checkpoint could name any file. Only ``.ckpt`` files beside ones this process saved or loaded go.
    """

    def __init__(self) -> None:
        super().__init__()
        self._folders: set[Path] = set()
        self._handed: tuple[Path, dict[str, Any]] | None = None

    def hand_over(self, path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
        """A checkpoint the caller already read with :func:`read_checkpoint` (and vetted): the next load of
        ``path`` returns it instead of reading the file a second time."""
        self._handed = (Path(path).resolve(), checkpoint)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None
    ) -> None:
        bad = non_finite_entries(checkpoint.get("state_dict", {}))
        if bad:
            raise TrainingDivergedError(
                f"Refusing to write {path}: {', '.join(bad)} contain NaN or infinite values. "
                "Training diverged; try a smaller learning rate (--model.lr)."
            )
        atomic_write(path, lambda stream: torch.save(checkpoint, stream))
        self._folders.add(Path(path).resolve().parent)

    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict:
        self._folders.add(Path(path).resolve().parent)
        handed, self._handed = self._handed, None
        if handed is not None and handed[0] == Path(path).resolve() and map_location in (None, "cpu"):
            return handed[1]
        return read_checkpoint(path, map_location or "cpu")

    def remove_checkpoint(self, path: str | os.PathLike) -> None:
        target = Path(path).resolve()
        if target.suffix != ".ckpt" or target.parent not in self._folders:
            rank_zero_warn(f"Not removing {path}: it is not a checkpoint in this run's checkpoint folder.")
            return
        super().remove_checkpoint(path)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: tensors and plain values only, never code."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder, not a checkpoint file. Pass a .ckpt file inside it (e.g. {path / 'last.ckpt'})."
        )
    if not path.is_file():
        kind = other_kind(path)
        if kind is not None:
            raise CheckpointError(f"{path} is not a regular file ({kind}). Pass the path of a .ckpt file.")
        raise CheckpointError(f"{path} does not exist. Pass the path of a .ckpt file.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" not in str(err):  # no refused class or function: bytes that are no checkpoint at all
            raise CheckpointError(
                f"{path} is damaged or not a PyTorch checkpoint (its contents do not unpickle)."
            ) from None
        raise CheckpointError(
            f"Refused to load {path}: it contains pickled objects other than tensors and plain values, "
            f"which could run arbitrary code ({_unsupported(err)}). "
            "Only load checkpoints written by this project, or re-save trusted ones as plain state dicts."
        ) from None
    except Exception as err:  # torch raises RuntimeError, EOFError, zip errors... for damaged files
        raise CheckpointError(
            f"{path} is damaged or not a PyTorch checkpoint ({type(err).__name__}: {str(err)[:200]}). "
            "Use another checkpoint of the run (its last.ckpt, or the newest intact one)."
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint of this project (no state_dict).")
    return checkpoint


KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def other_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` (a link followed) is when it exists and is no regular file (``None`` otherwise): reading a FIFO
    waits for a writer for ever and ``/dev/zero`` never ends, so such a path is refused by what it is.

    >>> other_kind("/dev/null"), other_kind("/no/such/file")
    ('a character device', None)
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return next((said for test, said in KINDS if test(mode)), None if stat.S_ISREG(mode) else "not a regular file")


def _unsupported(err: Exception) -> str:
    """The line of torch's long weights-only message that names the refused object."""
    lines = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line]
    return lines[0][:200]


def _checkpoint_files(folder: Path) -> list[Path]:
    """The folder's checkpoints, ``last.ckpt`` first, then newest first: regular files only, never a link (what
    ``best``/``last`` find is data and must not lead outside the runs folder the command looks in)."""
    files = [p for p in folder.glob("*.ckpt") if not p.name.startswith(".") and not p.is_symlink() and p.is_file()]
    return sorted(files, key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime_ns))


def latest_run_folder(runs_dir: Path) -> Path | None:
    """The ``<run>/checkpoints`` folder under ``runs_dir`` with the most recently written checkpoint."""
    folders = [
        folder
        for folder in runs_dir.glob("*/checkpoints")
        if not (folder.is_symlink() or folder.parent.is_symlink()) and _checkpoint_files(folder)
    ]
    if not folders:
        return None
    return max(folders, key=lambda f: max(p.stat().st_mtime_ns for p in _checkpoint_files(f)))


def _best_path(checkpoint: dict[str, Any], folder: Path) -> Path | None:
    for state in checkpoint.get("callbacks", {}).values():
        if isinstance(state, dict) and state.get("monitor") and state.get("best_model_path"):
            candidate = folder / Path(state["best_model_path"]).name
            if candidate.is_file():
                return candidate
    return None


def resolve_checkpoint(
    which: Literal["best", "last"], runs_dir: Path, option: str = "--ckpt_path"
) -> tuple[Path, list[str]]:
    """Find the latest run's ``last`` (newest intact) or ``best`` checkpoint under ``runs_dir``.

    Returns the path and notes for the user (e.g. that a damaged ``last.ckpt`` was skipped). ``option`` is the
    command's option that named ``which``, for the errors.
    """
    path, _, notes = find_checkpoint(which, runs_dir, option)
    return path, notes


def find_checkpoint(
    which: Literal["best", "last"], runs_dir: Path, option: str = "--ckpt_path", run: Path | None = None
) -> tuple[Path, dict[str, Any], list[str]]:
    """:func:`resolve_checkpoint`, with the checkpoint it found as read: a caller that needs its contents does not
    read the file a second time. ``run``: look in that run folder only, not in the latest run under ``runs_dir``."""
    if run is None:
        folder = latest_run_folder(runs_dir)
        where = f"{runs_dir}/*/checkpoints/"
    else:
        inside = run / "checkpoints"
        folder = inside if not (inside.is_symlink() or run.is_symlink()) and _checkpoint_files(inside) else None
        where = f"{inside}/"
    if folder is not None:
        remove_orphans(folder)
    if folder is None:
        raise CheckpointError(
            f"{option} {which}: no checkpoint found in {where}. "
            f"Train first (python train.py fit), or pass {option} PATH/TO/FILE.ckpt."
        )
    notes: list[str] = []
    for path in _checkpoint_files(folder):
        try:
            checkpoint = read_checkpoint(path)
        except CheckpointError as err:
            notes.append(f"skipped {path}: {err}")
            continue
        if which == "last":
            if notes:
                notes.append(f"resuming from {path}, the newest intact checkpoint of the run")
            return path, checkpoint, notes
        best = _best_path(checkpoint, folder)
        if best is not None:
            return best, (checkpoint if best == path else read_checkpoint(best)), notes
    skipped = f" ({'; '.join(notes)})" if notes else ""
    raise CheckpointError(
        f"{option} {which}: no intact checkpoint{' that names its best' if which == 'best' else ''} in {folder}"
        f"{skipped}; pass {option} PATH/TO/FILE.ckpt"
    )
