"""Checkpoints: atomic finite writes and weights-only reads (:mod:`.io`), ``best``/``last`` (:mod:`.find`),
what their hyperparameters may name (:mod:`.vetting`) and the model built from them (:mod:`.build`).

Nothing here imports a model: callers pass the model classes a checkpoint may name in an :class:`Allowlist`
(``mnist_lightning.models.ALLOWLIST`` for this project's).
"""

from mnist_lightning.checkpoint.build import build_model, build_vetted, load_model, weights_misfit
from mnist_lightning.checkpoint.find import find_checkpoint, latest_run_folder, resolve_checkpoint
from mnist_lightning.checkpoint.io import AtomicCheckpointIO, non_finite_entries, read_checkpoint
from mnist_lightning.checkpoint.vetting import Allowlist, VettedModel, vet_data, vet_members, vet_model

__all__ = [
    "Allowlist",
    "AtomicCheckpointIO",
    "VettedModel",
    "build_model",
    "build_vetted",
    "find_checkpoint",
    "latest_run_folder",
    "load_model",
    "non_finite_entries",
    "read_checkpoint",
    "resolve_checkpoint",
    "vet_data",
    "vet_members",
    "vet_model",
    "weights_misfit",
]
