"""Checkpoints: atomic finite writes, weights-only reads and ``best``/``last`` (:mod:`.io`), what their
hyperparameters may name and the model built from them (:mod:`.vetting`).

Nothing here imports a model: callers pass the model classes a checkpoint may name in an :class:`Allowlist`
(``mnist_lightning.models.ALLOWLIST`` for this project's).
"""

from mnist_lightning.checkpoint.io import (
    AtomicCheckpointIO,
    find_checkpoint,
    latest_run_folder,
    non_finite_entries,
    read_checkpoint,
    resolve_checkpoint,
)
from mnist_lightning.checkpoint.vetting import (
    INSTANTIATOR,
    Allowlist,
    VettedModel,
    build_model,
    check_weights,
    vet_data,
    vet_members,
    vet_model,
    weights_misfit,
)

__all__ = [
    "INSTANTIATOR",
    "Allowlist",
    "AtomicCheckpointIO",
    "VettedModel",
    "build_model",
    "check_weights",
    "find_checkpoint",
    "latest_run_folder",
    "non_finite_entries",
    "read_checkpoint",
    "resolve_checkpoint",
    "vet_data",
    "vet_members",
    "vet_model",
    "weights_misfit",
]
