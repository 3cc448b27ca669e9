"""Multinomial logistic regression, the classic tutorial model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable
from torch import nn

from mnist_lightning.models.checks import check_input_dim, check_size, require
from mnist_lightning.models.classifier import LitClassifier, OptimizerFactory
from mnist_lightning.models.deskew import deskew as deskew_images
from mnist_lightning.models.nets import fold_standardization
from mnist_lightning.models.schedulers import CosineToZeroLR


class LitLogReg(LitClassifier):
    """Multinomial logistic regression: one ``nn.Linear`` layer, the classic tutorial model.

    It takes pixels in [0, 1] and standardizes them with its own buffers. ``deskew=True`` first shears each
    digit upright by its own second moments (:mod:`~mnist_lightning.models.deskew`): a fixed input layer, no
    weights, that spares the one template per class from learning every slant:

    >>> model = LitLogReg()
    >>> model.set_input_statistics(0.1307, 0.3081)
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> list(model.state_dict())
    ['input_mean', 'input_std', 'temperature', 'linear.weight', 'linear.bias']
    """

    default_lr = 2e-2
    filters_per_class = True

    def __init__(
        self,
        input_dim: int = 784,
        num_classes: int = 10,
        lr: float | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = CosineToZeroLR,
        scheduler_interval: Literal["step", "epoch"] = "step",
        deskew: bool = False,
        init_from: str | None = None,
    ) -> None:
        super().__init__(num_classes, lr, optimizer, scheduler, scheduler_interval, init_from)
        self.linear = nn.Linear(input_dim, num_classes)
        self.deskew = deskew
        self.side = math.isqrt(input_dim)

    @classmethod
    def check_arguments(cls, args: Mapping[str, Any]) -> None:
        super().check_arguments(args)
        check_input_dim(args["input_dim"])
        check_size((args["input_dim"] + 1) * args["num_classes"])
        require(isinstance(args["deskew"], bool), f"deskew must be true or false, got {args['deskew']!r}")
        require(
            not args["deskew"] or math.isqrt(args["input_dim"]) ** 2 == args["input_dim"],
            f"deskew needs square images, so input_dim must be a square (784 = 28x28), got {args['input_dim']}",
        )

    @property
    def net(self) -> nn.Module:
        return self.linear

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The standardization folded into the layer: a pass over its 10x784 weights instead of over the batch."""
        if self.deskew:
            images = deskew_images(images.reshape(images.shape[0], 1, self.side, self.side))
        weight, bias = fold_standardization(self.linear.weight, self.linear.bias, self.input_mean, self.input_std)
        return F.linear(images.reshape(images.shape[0], -1), weight, bias)
