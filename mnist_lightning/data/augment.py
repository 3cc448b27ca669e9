"""Augmentation of whole training batches on the device they are trained on.

torchvision's transforms draw one random transform per call (per image, on the CPU, before collate); these
draw one per image of a batch in a single call, from a generator the caller seeds per batch, so that a
resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """Rotate, shift and scale every image of a ``(N, 1, H, W)`` batch by its own random amount, in one call.

    Pixels shifted in from outside the image are 0: the black background of MNIST digits.

    >>> moved = random_affine(torch.rand(4, 1, 28, 28), torch.Generator().manual_seed(0))
    >>> moved.shape
    torch.Size([4, 1, 28, 28])
    """
    n = images.shape[0]
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(n, device=device).uniform_(low, high, generator=generator)

    angle = torch.deg2rad(uniform(-degrees, degrees))
    factor = 1.0 / uniform(*scale)
    cos, sin = torch.cos(angle) * factor, torch.sin(angle) * factor
    shift_x, shift_y = uniform(-2 * translate, 2 * translate), uniform(-2 * translate, 2 * translate)
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
