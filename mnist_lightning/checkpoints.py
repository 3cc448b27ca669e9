"""Checkpoint files: written atomically and finite, read without running code, vetted, found by ``best``/``last``.

Lightning's ``TorchCheckpointIO`` moves a file from ``$TMPDIR`` into place (a truncated ``.ckpt`` when killed
across filesystems) and writes NaN weights as happily as any; ``torch.load`` of a foreign checkpoint can run
code, and LightningCLI imports whatever class path its hyperparameters name. This module closes those gaps.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mnist_lightning.errors import CheckpointError, TrainingDivergedError
from mnist_lightning.fileio import atomic_write, remove_orphans
from mnist_lightning.models import LitClassifier, LitCNN, LitLogReg, LitMLP

MODEL_CLASSES: dict[str, type[LitClassifier]] = {
    f"mnist_lightning.{cls.__qualname__}": cls for cls in (LitLogReg, LitMLP, LitCNN)
}
"""The model classes a checkpoint may name, by the import path the CLI writes."""
LEGACY_CLASS_PATHS = {f"mnist_lightning.models.{name.rpartition('.')[2]}": name for name in MODEL_CLASSES}
"""Version 0.1 wrote the defining module's path."""
ALLOWED_FACTORY_PREFIXES = ("torch.optim.", "mnist_lightning.models.CosineToZeroLR", "lightning.pytorch.cli.")


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
        remove_orphans(folder)
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
