"""``--model.init_from``: a new run that starts from a trained model's weights (fine-tuning), not a resumed one.

The checkpoint is read and vetted as every checkpoint is (weights-only, allowlisted hyperparameters); it must
hold the same model class with the same architecture (every constructor argument except the training ones,
:data:`TRAINING_ARGUMENTS`, and ``dropout``), and only its ``state_dict`` is taken: the weights, the input
statistics they were trained with and the fitted temperature (refitted at the new run's first validation). Its
optimizer, schedule, epoch and callbacks stay behind: the new run builds its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mnist_lightning.checkpoint import Allowlist, read_checkpoint, vet_model, weights_misfit
from mnist_lightning.errors import CheckpointError
from mnist_lightning.specs import as_yaml

TRAINING_ARGUMENTS = ("lr", "optimizer", "scheduler", "scheduler_interval", "init_from")
"""The base constructor's arguments that say how the weights are trained, not what they are: a fine-tune may change
them (and ``dropout``), a model class that never trains leaves them out, an ensemble drops its members'."""


NOT_ARCHITECTURE = (*TRAINING_ARGUMENTS, "dropout", "label_smoothing", "outlier_weight")
"""What a fine-tune may change besides the training arguments: dropout only regularizes training (adding or
removing its layer renames the later ones, which the weights' fit check names) and label smoothing only shapes the
loss."""


def initial_weights(path: str, model: Any, allowed: Allowlist) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of the checkpoint at ``path``, vetted, for ``model`` (a ``LitClassifier``) to start from.

    Refused in one line: a checkpoint that is unsafe or damaged, of another model class, or of another
    architecture (naming what differs).
    """
    where = f"--model.init_from {path}"
    if not Path(path).is_file():
        raise CheckpointError(
            f"{where}: no such file; pass the .ckpt file of a trained run "
            "(e.g. lightning_logs/version_0/checkpoints/last.ckpt)"
        )
    try:
        checkpoint = read_checkpoint(path)
        vetted = vet_model(checkpoint.get("hyper_parameters"), allowed)
    except CheckpointError as err:
        raise CheckpointError(f"{where}: {err}") from None
    mine = type(model)
    if getattr(vetted.cls, "nested_models", ()):
        raise CheckpointError(
            f"{where} holds an ensemble, which is assembled from trained models, never trained itself: pass the "
            f"checkpoint of one of its members (a {mine.__name__} to fine-tune this run)"
        )
    if vetted.cls is not mine:
        raise CheckpointError(
            f"{where} holds a {vetted.cls.__name__}, but this run trains a {mine.__name__}: pass "
            f"--model {vetted.cls.__name__} with its architecture, or a checkpoint of a {mine.__name__}"
        )
    differences = architecture_differences(_with_defaults(mine, vetted.init_args), dict(model.hparams))
    if differences:
        raise CheckpointError(
            f"{where} holds another {mine.__name__} architecture ({'; '.join(differences)}): pass the "
            "checkpoint's settings (or drop yours) so the weights fit"
        )
    model.on_load_checkpoint(checkpoint)  # checkpoints from before the model kept its statistics
    misfit = weights_misfit(model.state_dict(), checkpoint["state_dict"])
    if misfit:
        raise CheckpointError(f"{where}: its weights do not fit this {mine.__name__} ({misfit})")
    return checkpoint["state_dict"]


def _with_defaults(cls: type, init_args: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint's constructor arguments with the signature's defaults for those it leaves out."""
    bound = inspect.signature(cls).bind_partial(**init_args)
    bound.apply_defaults()
    return dict(bound.arguments)


def architecture_differences(checkpoint: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    """``name: checkpoint value vs this run's`` for each architecture argument that differs.

    >>> architecture_differences({"channels": [16, 32], "lr": 0.1, "label_smoothing": 0.1},
    ...                          {"channels": (8, 32), "lr": 0.003, "label_smoothing": 0.0})
    ['channels [16, 32] in the checkpoint, [8, 32] here']
    """
    return [
        f"{name} {as_yaml(value)} in the checkpoint, {as_yaml(run[name])} here"
        for name, value in checkpoint.items()
        if name not in NOT_ARCHITECTURE and name in run and as_yaml(value) != as_yaml(run[name])
    ]
