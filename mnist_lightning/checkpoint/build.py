"""A model from a checkpoint: built from vetted hyperparameters out of an allowlist, then given its weights.

The allowlist (:class:`~mnist_lightning.checkpoint.vetting.Allowlist`) is passed in by the caller: this package
imports no model module, so the models can use it without an import circle.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch

from mnist_lightning.checkpoint.io import non_finite_entries, read_checkpoint
from mnist_lightning.checkpoint.vetting import Allowlist, VettedModel, vet_model
from mnist_lightning.errors import CheckpointError


def build_model(
    checkpoint: dict[str, Any], allowed: Allowlist, expected: type[L.LightningModule] | None = None, **overrides: Any
) -> Any:
    """The checkpoint's model with its weights, built from vetted hyperparameters (see :mod:`.vetting`).

    ``expected`` refuses another model class (``LitLogReg.load_from_checkpoint`` of an MLP); ``overrides``
    replace hyperparameters, as ``load_from_checkpoint(path, lr=...)`` does.
    """
    vetted = vet_model(checkpoint.get("hyper_parameters"), allowed)
    if expected is not None and not issubclass(vetted.cls, expected):
        raise CheckpointError(
            f"The checkpoint holds a {vetted.cls.__name__}, not a {expected.__name__}: load it with "
            f"{vetted.cls.__name__}.load_from_checkpoint or mnist_lightning.load_model."
        )
    return build_vetted(vetted, checkpoint, allowed, **overrides)


def build_vetted(vetted: VettedModel, checkpoint: dict[str, Any], allowed: Allowlist, **overrides: Any) -> Any:
    """The model ``vetted`` describes, with the checkpoint's weights: for a caller that has vetted the checkpoint
    already (the CLI takes its settings from the same vetting) and must not vet it twice."""
    bad = non_finite_entries(checkpoint["state_dict"])
    if bad:  # never written by this project (AtomicCheckpointIO refuses them): answers would be NaN
        raise CheckpointError(
            f"The checkpoint's {', '.join(bad[:3])} hold NaN or infinite values: it is damaged or was written by "
            "a run that diverged. Use another checkpoint of the run."
        )
    model = vetted.build(allowed, **overrides)
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


def load_model(path: str | os.PathLike, allowed: Allowlist, map_location: str | torch.device = "cpu") -> Any:
    """The model in a checkpoint file, ready for inference (eval mode), from one ``weights_only`` read."""
    return build_model(read_checkpoint(path), allowed).to(map_location).eval()
