"""Finding a run's checkpoints: ``last`` (the newest intact one) and ``best`` (what the run's ModelCheckpoint
chose), in the latest run under a runs folder, as ``train.py --ckpt_path`` and ``mnist-serve --ckpt`` take them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mnist_lightning.checkpoint.io import read_checkpoint
from mnist_lightning.errors import CheckpointError
from mnist_lightning.fileio import remove_orphans


def _checkpoint_files(folder: Path) -> list[Path]:
    """The folder's checkpoints, ``last.ckpt`` first, then newest first."""
    files = [p for p in folder.glob("*.ckpt") if not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime_ns))


def latest_run_folder(runs_dir: Path) -> Path | None:
    """The ``<run>/checkpoints`` folder under ``runs_dir`` with the most recently written checkpoint."""
    folders = [f for f in runs_dir.glob("*/checkpoints") if _checkpoint_files(f)]
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
    which: Literal["best", "last"], runs_dir: Path, option: str = "--ckpt_path"
) -> tuple[Path, dict[str, Any], list[str]]:
    """:func:`resolve_checkpoint`, with the checkpoint it found as read: a caller that needs its contents does not
    read the file a second time."""
    folder = latest_run_folder(runs_dir)
    if folder is not None:
        remove_orphans(folder)
    if folder is None:
        raise CheckpointError(
            f"{option} {which}: no checkpoint found in {runs_dir}/*/checkpoints/. "
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
    raise CheckpointError(f"{option} {which}: no intact checkpoint in {folder}.\n" + "\n".join(notes))
