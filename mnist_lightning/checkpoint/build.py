"""A model from a checkpoint: built from vetted hyperparameters out of an allowlist, then given its weights.

The allowlist (:class:`~mnist_lightning.checkpoint.vetting.Allowlist`) is passed in by the caller: this package
imports no model module, so the models can use it without an import circle.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch

from mnist_lightning.checkpoint.io import first_line, read_checkpoint
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
    model = vetted.build(allowed, **overrides)
    model.on_load_checkpoint(checkpoint)
    state = checkpoint["state_dict"]
    expected_keys = set(model.state_dict())
    if set(state) != expected_keys:
        missing, unexpected = sorted(expected_keys - set(state)), sorted(set(state) - expected_keys)
        raise CheckpointError(
            f"The checkpoint's weights do not fit {vetted.cls.__name__} (missing {missing[:4]}, unexpected "
            f"{unexpected[:4]}): it is not a checkpoint of this project, or its file was altered."
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"The checkpoint's weights do not fit {vetted.cls.__name__}: {first_line(err)}") from None
    return model


def load_model(path: str | os.PathLike, allowed: Allowlist, map_location: str | torch.device = "cpu") -> Any:
    """The model in a checkpoint file, ready for inference (eval mode), from one ``weights_only`` read."""
    return build_model(read_checkpoint(path), allowed).to(map_location).eval()
