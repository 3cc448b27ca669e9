"""Checkpoint files: written atomically, read without running code, found by ``best``/``last``.

Lightning writes a checkpoint through a temporary file in ``$TMPDIR`` and moves it into place; across
filesystems that move is a copy, so a kill leaves a truncated ``.ckpt`` (and an orphaned temporary file).
Here every checkpoint and export is written in its own folder, fsynced and renamed over the target.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Literal

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mnist_lightning.errors import CheckpointError, TrainingDivergedError
from mnist_lightning.models import LitClassifier, LitLogReg, LitMLP

MODEL_CLASSES: dict[str, type[LitClassifier]] = {
    f"{cls.__module__}.{cls.__qualname__}": cls for cls in (LitLogReg, LitMLP)
}
ALLOWED_FACTORY_PREFIXES = ("torch.optim.", "mnist_lightning.models.CosineToZeroLR", "lightning.pytorch.cli.")
PARTIAL = re.compile(r"^\..+\.(\d+)\.partial$")


def _remove_orphans(folder: Path) -> None:
    """Delete partial files that a killed writer left behind (those whose process is gone)."""
    for path in folder.glob(".*.partial"):
        match = PARTIAL.match(path.name)
        if match and not _process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def atomic_write(path: _PATH, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` so that readers only ever see the old file or the complete new one.

    The data goes to an unnamed file in the same folder (a named one where ``O_TMPFILE`` is missing), is
    fsynced, named ``.<name>.<pid>.partial`` and renamed over ``path``. A kill leaves no truncated target
    and no half-written file; only a kill in the microseconds between naming and renaming leaves a complete
    partial file behind, which the next write in that folder (or ``--ckpt_path last``) removes.
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    _remove_orphans(folder)
    partial = folder / f".{path.name}.{os.getpid()}.partial"
    try:
        if not _write_anonymous_then_link(folder, partial, write):
            with partial.open("wb") as stream:
                write(stream)
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(partial, path)
        _fsync_folder(folder)
    finally:
        partial.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def non_finite_entries(state_dict: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors in ``state_dict`` holding NaN or infinity."""
    return [
        name
        for name, value in state_dict.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()
    ]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, but atomic in the target folder and refusing non-finite weights."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        bad = non_finite_entries(checkpoint.get("state_dict", {}))
        if bad:
            raise TrainingDivergedError(
                f"Refusing to write {path}: {', '.join(bad)} contain NaN or infinite values. "
                "Training diverged; try a smaller learning rate (--model.lr)."
            )
        atomic_write(path, lambda stream: torch.save(checkpoint, stream))


def read_checkpoint(path: _PATH) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: tensors and plain values only, never code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist. Pass the path of a .ckpt file, or --ckpt_path best|last.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
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
            "Use another checkpoint of the run (e.g. --ckpt_path last falls back to the newest intact one)."
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint of this project (no state_dict).")
    return checkpoint


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:200]


def _unsupported(err: Exception) -> str:
    """The line of torch's long weights-only message that names the refused object."""
    lines = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line]
    return (lines[0] if lines else _first_line(err))[:200]


def _require_allowed_factory(spec: Any, key: str) -> None:
    if spec is None:
        return
    class_path = spec.get("class_path") if isinstance(spec, dict) else None
    if not isinstance(class_path, str) or not class_path.startswith(ALLOWED_FACTORY_PREFIXES):
        raise CheckpointError(
            f"The checkpoint's {key} {class_path or spec!r} is not a torch optimizer/scheduler; refusing to load it."
        )


def model_class_for(hparams: dict[str, Any]) -> type[LitClassifier]:
    """Check a checkpoint's hyperparameters before anything is imported or allocated for them.

    Returns the model class they name; raises :class:`CheckpointError` when they name anything but this
    project's models and torch optimizers, or hold values the model would refuse.
    """
    class_path = hparams.get("_class_path", "mnist_lightning.models.LitLogReg")
    if class_path not in MODEL_CLASSES:
        raise CheckpointError(
            f"The checkpoint names model class {class_path!r}; only {sorted(MODEL_CLASSES)} are loaded."
        )
    instantiator = hparams.get("_instantiator")
    if instantiator not in (None, "lightning.pytorch.cli.instantiate_module"):
        raise CheckpointError(f"The checkpoint names instantiator {instantiator!r}; refusing to load it.")
    for key in ("optimizer", "scheduler"):
        _require_allowed_factory(hparams.get(key), key)
    cls = MODEL_CLASSES[class_path]
    try:
        cls.check_hparams(hparams)
    except ValueError as err:
        raise CheckpointError(f"The checkpoint's hyperparameters are invalid: {err}") from None
    return cls


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


def resolve_checkpoint(which: Literal["best", "last"], runs_dir: Path) -> tuple[Path, list[str]]:
    """Find the latest run's ``last`` (newest intact) or ``best`` checkpoint under ``runs_dir``.

    Returns the path and notes for the user (e.g. that a damaged ``last.ckpt`` was skipped).
    """
    folder = latest_run_folder(runs_dir)
    if folder is not None:
        _remove_orphans(folder)
    if folder is None:
        raise CheckpointError(
            f"--ckpt_path {which}: no checkpoint found in {runs_dir}/*/checkpoints/. "
            "Train first (python train.py fit), or pass --ckpt_path PATH/TO/FILE.ckpt."
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
            return path, notes
        best = _best_path(checkpoint, folder)
        if best is not None:
            return best, notes
    raise CheckpointError(f"--ckpt_path {which}: no intact checkpoint in {folder}.\n" + "\n".join(notes))
