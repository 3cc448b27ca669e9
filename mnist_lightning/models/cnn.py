"""A small convolutional network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable

from mnist_lightning.models.checks import check_dropout, check_size, is_int, require
from mnist_lightning.models.classifier import LitClassifier, OptimizerFactory
from mnist_lightning.models.nets import cnn_cost, cnn_layers
from mnist_lightning.models.schedulers import CosineToZeroLR

MAX_MULTIPLY_ADDS = 200_000_000
"""Per image: a CNN this size already takes minutes per epoch on a 2-core CPU."""


class LitCNN(LitClassifier):
    """A small convolutional network: by default two conv blocks (16 and 32 channels, 5x5 and 3x3 kernels, ReLU,
    2x2 max-pooling), a hidden layer of 128 and dropout 0.25.

    The layers are kept channels-last (NHWC), which oneDNN's CPU convolutions run faster than NCHW;
    convolutions scale with cores, so ``--torch_threads auto`` gives it all of them.

    Args:
        channels: Output channels of each conv block (1-4 blocks: each halves the image side).
        kernel_sizes: Odd kernel size of each conv block (same padding), one per block.
        hidden_dim: Width of the fully connected layer after the convolutions (0: none).
        dropout: Dropout probability before the classifier.
        batch_norm: Batch norm after each convolution (the convolution then has no bias).
        convs_per_block: Convolutions before each pooling (2: VGG-style pairs, more depth at the same image
            size).
        label_smoothing: Share of each training target spread over the other classes (0: plain cross-entropy);
            it keeps a short, fast run from growing over-confident on its training digits.
        outlier_weight: Weight of the loss that teaches uniform probabilities on the training pictures that are
            no digits (``--data.negatives``); 0: such pictures are left out of the loss.

    >>> LitCNN()(torch.zeros(3, 1, 28, 28)).shape
    torch.Size([3, 10])
    """

    input_shape = (1, 28, 28)
    cpu_threads = None

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32),
        kernel_sizes: tuple[int, ...] = (5, 3),
        hidden_dim: int = 128,
        dropout: float = 0.25,
        batch_norm: bool = False,
        convs_per_block: int = 1,
        label_smoothing: float = 0.0,
        outlier_weight: float = 0.0,
        num_classes: int = 10,
        lr: float | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = CosineToZeroLR,
        scheduler_interval: Literal["step", "epoch"] = "step",
        init_from: str | None = None,
    ) -> None:
        super().__init__(num_classes, lr, optimizer, scheduler, scheduler_interval, init_from)
        self.net = cnn_layers(
            channels, kernel_sizes, hidden_dim, dropout, batch_norm, num_classes, convs_per_block=convs_per_block
        )
        self.net.to(memory_format=torch.channels_last)
        self.label_smoothing = label_smoothing
        self.outlier_weight = outlier_weight

    @classmethod
    def check_arguments(cls, args: Mapping[str, Any]) -> None:
        super().check_arguments(args)
        channels, kernels, hidden = args["channels"], args["kernel_sizes"], args["hidden_dim"]
        require(
            isinstance(channels, (list, tuple))
            and 1 <= len(channels) <= 4
            and all(is_int(c) and c >= 1 for c in channels),
            f"channels must be a list of 1-4 widths >= 1 (each block halves the 28x28 image), got {channels!r}",
        )
        require(
            isinstance(kernels, (list, tuple))
            and len(kernels) == len(channels)
            and all(is_int(k) and k % 2 == 1 and 1 <= k <= 27 for k in kernels),
            f"kernel_sizes must give one odd size 1-27 per conv block ({len(channels)} here), got {kernels!r}",
        )
        require(is_int(hidden) and hidden >= 0, f"hidden_dim must be a whole number >= 0, got {hidden!r}")
        check_dropout(args["dropout"])
        require(isinstance(args["batch_norm"], bool), "batch_norm must be true or false")
        convs = args["convs_per_block"]
        require(is_int(convs) and 1 <= convs <= 4, f"convs_per_block must be a whole number 1-4, got {convs!r}")
        smoothing = args["label_smoothing"]
        require(
            isinstance(smoothing, (int, float)) and not isinstance(smoothing, bool) and 0.0 <= smoothing < 1.0,
            f"label_smoothing must be in [0, 1), got {smoothing!r}",
        )
        weight = args["outlier_weight"]
        require(
            isinstance(weight, (int, float)) and not isinstance(weight, bool) and 0.0 <= weight <= 10.0,
            f"outlier_weight must be in [0, 10], got {weight!r}; 0.5 is the usual weight",
        )
        params, macs = cnn_cost(channels, kernels, hidden, args["num_classes"], convs_per_block=convs)
        check_size(params)
        require(
            macs <= MAX_MULTIPLY_ADDS,
            f"these layer sizes need {macs:,} multiply-adds per image, more than the {MAX_MULTIPLY_ADDS:,} allowed",
        )

    def input_filters(self) -> torch.Tensor:
        """The first convolution's kernels as ``(K, k, k)`` images."""
        return self.net[0].weight.detach()[:, 0]
