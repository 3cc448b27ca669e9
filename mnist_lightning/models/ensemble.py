"""A small ensemble: several trained classifiers that answer together, in one checkpoint.

Averaging the calibrated probabilities of models trained from different random starts removes part of each
one's errors (they disagree on the hard digits); nothing in Lightning or torchmetrics keeps such a group as
one model that loads, predicts, serves and exports like any other, so this class does. It is assembled from
trained checkpoints (``mnist-ensemble``), never fitted: each member was fitted on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from mnist_lightning.checkpoint import vet_members
from mnist_lightning.errors import CheckpointError, ConfigError
from mnist_lightning.models.checks import MAX_PARAMETERS, is_int, require
from mnist_lightning.models.classifier import LitClassifier
from mnist_lightning.models.warm_start import TRAINING_ARGUMENTS


def for_inference(spec: Any) -> Any:
    """A member's hyperparameters without the arguments only its training used: an ensemble never trains, and
    LightningCLI would try to build the optimizers and schedulers they name (anything else is left for vetting)."""
    return {k: v for k, v in spec.items() if k not in TRAINING_ARGUMENTS} if isinstance(spec, Mapping) else spec


class LitEnsemble(LitClassifier):
    """The mean of its members' calibrated probabilities, calibrated once more by its own temperature.

    :meth:`forward` returns the logarithm of that mean, so ``softmax(forward(x) / temperature)`` is the
    ensemble's answer, as for every other model. Each member keeps its own input standardization and
    temperature; the ensemble's temperature is fitted on the validation split its members held out.

    Args:
        members: Each member's hyperparameters as its checkpoint stores them (``model.hparams``, with its
            ``_class_path``); the weights come with the ensemble's state_dict (``members.0.net...``).
        num_classes: Number of classes; every member must have as many.
    """

    nested_models: ClassVar[tuple[str, ...]] = ("members",)
    """Arguments holding other models' hyperparameters, which checkpoint vetting checks member by member."""
    input_shape = (1, 28, 28)
    cpu_threads = None

    def __init__(self, members: list[dict[str, Any]], num_classes: int = 10) -> None:
        members = [for_inference(spec) for spec in members]  # what save_hyperparameters stores
        super().__init__(num_classes)
        allowed, total = type(self).checkpoint_allowlist, 0
        self.members = nn.ModuleList()
        for member in vet_members(self.hparams.members, "members", allowed):  # one at a time: a crafted
            self.members.append(member.build(allowed))  # checkpoint stops at the first member over the limit
            total += sum(parameter.numel() for parameter in self.members[-1].parameters())
            require(
                total <= MAX_PARAMETERS,
                f"the members need more than the {MAX_PARAMETERS:,} parameters one model may have, together",
            )

    @classmethod
    def check_arguments(cls, args: Mapping[str, Any]) -> None:
        num_classes, members = args["num_classes"], args["members"]
        require(is_int(num_classes) and 2 <= num_classes <= 1000, f"num_classes must be 2-1000, got {num_classes!r}")
        try:
            vetted = vet_members(members, "members", cls.checkpoint_allowlist)
        except CheckpointError as err:
            raise ConfigError(str(err).replace("Refusing the checkpoint: ", "LitEnsemble: ")) from None
        require(len(vetted) >= 2, f"an ensemble needs at least 2 members, got {len(vetted)}")
        counts = {member.init_args.get("num_classes", 10) for member in vetted}
        require(counts == {num_classes}, f"every member must have num_classes {num_classes}, got {sorted(counts)}")

    @classmethod
    def of(cls, models: list[LitClassifier]) -> LitEnsemble:
        """An ensemble of trained models (their weights copied), with temperature 1 until it is fitted."""
        ensemble = cls([dict(model.hparams) for model in models], num_classes=models[0].num_classes)
        for member, model in zip(ensemble.members, models, strict=True):
            member.load_state_dict(model.state_dict())
        return ensemble

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Log of the mean of the members' calibrated probabilities: logits whose softmax is that mean."""
        return self.combine(torch.stack([member.probabilities(images) for member in self.members]))

    @staticmethod
    def combine(probabilities: torch.Tensor) -> torch.Tensor:
        """The ensemble's logits from its members' calibrated probabilities ``(members, N, classes)``: for a
        caller that has them already (the ensemble command, which also reports each member)."""
        mean = probabilities.mean(dim=0)
        return mean.clamp_min(torch.finfo(mean.dtype).tiny).log()

    def input_filters(self) -> torch.Tensor:
        """The first member's (what the TensorBoard picture would show)."""
        return self.members[0].input_filters()

    def setup(self, stage: str) -> None:
        if stage == "fit":
            raise ConfigError(
                "a LitEnsemble is assembled from trained checkpoints, not fitted: fit each member (e.g. with "
                "--seed_everything 1, 2, 3), then run mnist-ensemble"
            )
