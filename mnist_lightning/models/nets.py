"""Plain torch layers of the models, with no Lightning in them: what a bare torch script rebuilds an exported
state_dict with, and the cost arithmetic that refuses absurd sizes before any memory is allocated."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def fold_standardization(
    weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a linear layer that first standardizes its input: ``W (x - mean) / std + b`` equals
    ``(W / std) x + (b - (W / std).sum(1) * mean)``.

    >>> import torch.nn.functional as F
    >>> w, b = torch.randn(3, 5), torch.randn(3)
    >>> x, mean, std = torch.rand(2, 5), torch.tensor(0.1), torch.tensor(0.3)
    >>> folded_w, folded_b = fold_standardization(w, b, mean, std)
    >>> torch.allclose(F.linear(x, folded_w, folded_b), F.linear((x - mean) / std, w, b), atol=1e-5)
    True
    """
    scaled = weight / std
    return scaled, bias - scaled.sum(dim=1) * mean


def mlp_layers(
    input_dim: int, hidden_dims: Sequence[int], activation: str, dropout: float, num_classes: int = 10
) -> nn.Sequential:
    """The layers of :class:`~mnist_lightning.models.LitMLP`: each hidden layer is linear, activation and
    (if ``dropout > 0``) dropout; then the classifier.

    >>> [type(m).__name__ for m in mlp_layers(784, (32,), "relu", 0.2)]
    ['Linear', 'ReLU', 'Dropout', 'Linear']
    """
    layers: list[nn.Module] = []
    widths = [input_dim, *hidden_dims]
    for fan_in, fan_out in itertools.pairwise(widths):
        layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(widths[-1], num_classes))
    return nn.Sequential(*layers)


def mlp_parameters(input_dim: int, hidden_dims: Sequence[int], num_classes: int = 10) -> int:
    """Parameters of :func:`mlp_layers`, computed without building it.

    >>> mlp_parameters(784, (32,)) == sum(p.numel() for p in mlp_layers(784, (32,), "relu", 0.0).parameters())
    True
    """
    widths = [input_dim, *hidden_dims, num_classes]
    return sum((a + 1) * b for a, b in itertools.pairwise(widths))


def cnn_layers(
    channels: Sequence[int],
    kernel_sizes: Sequence[int],
    hidden_dim: int,
    dropout: float,
    batch_norm: bool,
    num_classes: int = 10,
    side: int = 28,
    convs_per_block: int = 1,
) -> nn.Sequential:
    """The layers of :class:`~mnist_lightning.models.LitCNN` as a plain ``nn.Sequential`` of
    ``(N, 1, side, side)`` standardized images: each block is ``convs_per_block`` times conv (same padding),
    optional batch norm and ReLU, with 2x2 max-pooling; then an optional hidden layer and the classifier.

    A block's last ReLU comes after its pooling: ReLU is monotone, so ``relu(maxpool(x)) == maxpool(relu(x))``
    and the gradients are the same, but the ReLU and its backward touch a quarter of the values. The
    parameters keep their names, so checkpoints written with the other order load unchanged.

    >>> cnn_layers((8, 16), (5, 3), 32, 0.0, True)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> [type(m).__name__ for m in cnn_layers((8,), (3,), 0, 0.0, False, convs_per_block=2)]
    ['Conv2d', 'ReLU', 'Conv2d', 'MaxPool2d', 'ReLU', 'Flatten', 'Linear']
    """
    layers: list[nn.Module] = []
    fan_in = 1
    for width, kernel in zip(channels, kernel_sizes, strict=True):
        for conv in range(convs_per_block):
            layers.append(nn.Conv2d(fan_in, width, kernel, padding=kernel // 2, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            if conv < convs_per_block - 1:
                layers.append(nn.ReLU(inplace=True))
            fan_in = width
        layers += [nn.MaxPool2d(2), nn.ReLU(inplace=True)]
        side = side // 2
    layers.append(nn.Flatten())
    features = fan_in * side * side
    if hidden_dim > 0:
        layers += [nn.Linear(features, hidden_dim), nn.ReLU(inplace=True)]
        features = hidden_dim
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def cnn_cost(
    channels: Sequence[int],
    kernel_sizes: Sequence[int],
    hidden_dim: int,
    num_classes: int = 10,
    side: int = 28,
    convs_per_block: int = 1,
) -> tuple[int, int]:
    """Parameters and multiply-adds per image of :func:`cnn_layers` (batch norm ignored), computed without
    building it, so absurd sizes are refused before any memory is allocated.

    >>> cnn_cost((16, 32), (5, 3), 128)
    (207178, 1418752)
    """
    params, macs, fan_in = 0, 0, 1
    for width, kernel in zip(channels, kernel_sizes, strict=True):
        for _ in range(convs_per_block):
            params += width * (fan_in * kernel * kernel + 1)
            macs += width * fan_in * kernel * kernel * side * side
            fan_in = width
        side = side // 2
    widths = [fan_in * side * side, *([hidden_dim] if hidden_dim > 0 else []), num_classes]
    for a, b in itertools.pairwise(widths):
        params += (a + 1) * b
        macs += a * b
    return params, macs
