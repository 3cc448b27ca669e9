"""A feed-forward network of fully connected layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable

from mnist_lightning.models.checks import check_dropout, check_input_dim, check_size, is_int, require
from mnist_lightning.models.classifier import LitClassifier, OptimizerFactory
from mnist_lightning.models.nets import ACTIVATIONS, fold_standardization, mlp_layers, mlp_parameters
from mnist_lightning.models.schedulers import CosineToZeroLR


class LitMLP(LitClassifier):
    """Feed-forward network, by default 784-512-256-10 with ReLU, dropout 0.2 and Adam lr 0.003;
    ``hidden_dims=(128, 64)`` is the tutorials' MLP (``configs/mlp.yaml``), which needs smaller batches and more
    epochs.

    Args:
        hidden_dims: Width of each hidden layer.
        activation: ``relu``, ``gelu``, ``silu``, ``tanh`` or ``sigmoid``.
        dropout: Dropout probability after each hidden activation.

    >>> LitMLP()(torch.zeros(3, 784)).shape
    torch.Size([3, 10])
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden_dims: tuple[int, ...] = (512, 256),
        activation: Literal["relu", "gelu", "silu", "tanh", "sigmoid"] = "relu",
        dropout: float = 0.2,
        num_classes: int = 10,
        lr: float | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = CosineToZeroLR,
        scheduler_interval: Literal["step", "epoch"] = "step",
        init_from: str | None = None,
    ) -> None:
        super().__init__(num_classes, lr, optimizer, scheduler, scheduler_interval, init_from)
        self.net = mlp_layers(input_dim, hidden_dims, activation, dropout, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """As LitLogReg's: the standardization folded into the first layer instead of a pass over the batch."""
        first = self.net[0]
        weight, bias = fold_standardization(first.weight, first.bias, self.input_mean, self.input_std)
        return self.net[1:](F.linear(images.reshape(images.shape[0], -1), weight, bias))

    @classmethod
    def check_arguments(cls, args: Mapping[str, Any]) -> None:
        super().check_arguments(args)
        check_input_dim(args["input_dim"])
        hidden, activation = args["hidden_dims"], args["activation"]
        require(
            isinstance(hidden, (list, tuple)) and len(hidden) <= 32 and all(is_int(w) and w >= 1 for w in hidden),
            f"hidden_dims must be a list of at most 32 widths >= 1, got {hidden!r}",
        )
        require(activation in ACTIVATIONS, f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        check_dropout(args["dropout"])
        check_size(mlp_parameters(args["input_dim"], hidden, args["num_classes"]))
