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
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from mnist_lightning.errors import CheckpointError, TrainingDivergedError
from mnist_lightning.fileio import atomic_write, remove_orphans
from mnist_lightning.models import LitClassifier
from mnist_lightning.vetting import vet_model


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

    def hand_over(self, path: _PATH, checkpoint: dict[str, Any]) -> None:
        """A checkpoint the caller already read with :func:`read_checkpoint` (and vetted): the next load of
        ``path`` returns it instead of reading the file a second time."""
        self._handed = (Path(path).resolve(), checkpoint)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        bad = non_finite_entries(checkpoint.get("state_dict", {}))
        if bad:
            raise TrainingDivergedError(
                f"Refusing to write {path}: {', '.join(bad)} contain NaN or infinite values. "
                "Training diverged; try a smaller learning rate (--model.lr)."
            )
        atomic_write(path, lambda stream: torch.save(checkpoint, stream))
        self._folders.add(Path(path).resolve().parent)

    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        self._folders.add(Path(path).resolve().parent)
        handed, self._handed = self._handed, None
        if handed is not None and handed[0] == Path(path).resolve() and map_location in (None, "cpu"):
            return handed[1]
        return read_checkpoint(path, map_location or "cpu")

    def remove_checkpoint(self, path: _PATH) -> None:
        target = Path(path).resolve()
        if target.suffix != ".ckpt" or target.parent not in self._folders:
            rank_zero_warn(f"Not removing {path}: it is not a checkpoint in this run's checkpoint folder.")
            return
        super().remove_checkpoint(path)


def read_checkpoint(path: _PATH, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: tensors and plain values only, never code."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder, not a checkpoint file. Pass a .ckpt file inside it (e.g. {path / 'last.ckpt'}), "
            "or --ckpt_path best|last for the latest run."
        )
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist. Pass the path of a .ckpt file, or --ckpt_path best|last.")
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


def build_model(checkpoint: dict[str, Any], expected: type[LitClassifier] = LitClassifier, **overrides: Any):
    """The checkpoint's model with its weights, built from vetted hyperparameters (see :mod:`vetting`).

    ``expected`` refuses another model class (``LitLogReg.load_from_checkpoint`` of an MLP); ``overrides``
    replace hyperparameters, as ``load_from_checkpoint(path, lr=...)`` does.
    """
    vetted = vet_model(checkpoint.get("hyper_parameters"))
    if not issubclass(vetted.cls, expected):
        raise CheckpointError(
            f"The checkpoint holds a {vetted.cls.__name__}, not a {expected.__name__}: load it with "
            f"{vetted.cls.__name__}.load_from_checkpoint or mnist_lightning.load_model."
        )
    model = vetted.build(**overrides)
    model.on_load_checkpoint(checkpoint)
    misfit = weights_misfit(model.state_dict(), checkpoint["state_dict"])
    if misfit:
        raise CheckpointError(
            f"The checkpoint's weights do not fit {vetted.cls.__name__} ({misfit}): it is not a checkpoint of this "
            "project, or its file was altered."
        )
    model.load_state_dict(checkpoint["state_dict"])
    return model


def weights_misfit(expected: dict[str, Any], given: dict[str, Any]) -> str | None:
    """What in the weights ``given`` does not fit a model whose ``state_dict()`` is ``expected`` (names missing or
    unexpected, shapes that differ), said in a few words; ``None`` when they fit. Nothing is built or copied."""
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    shapes = [
        f"{name} is {_shape(given[name])} in the checkpoint, {_shape(tensor)} in the model"
        for name, tensor in expected.items()
        if name in given and _shape(given[name]) != _shape(tensor)
    ]
    said = [f"missing {missing[:4]}"] if missing else []
    said += [f"unexpected {unexpected[:4]}"] if unexpected else []
    said += shapes[:3]
    return "; ".join(said) or None


def _shape(value: Any) -> str:
    return "x".join(map(str, value.shape)) or "a scalar" if isinstance(value, torch.Tensor) else type(value).__name__


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
    path, _, notes = find_checkpoint(which, runs_dir)
    return path, notes


def find_checkpoint(which: Literal["best", "last"], runs_dir: Path) -> tuple[Path, dict[str, Any], list[str]]:
    """:func:`resolve_checkpoint`, with the checkpoint it found as read: a caller that needs its contents does not
    read the file a second time."""
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
            return path, checkpoint, notes
        best = _best_path(checkpoint, folder)
        if best is not None:
            return best, (checkpoint if best == path else read_checkpoint(best)), notes
    raise CheckpointError(f"--ckpt_path {which}: no intact checkpoint in {folder}.\n" + "\n".join(notes))
