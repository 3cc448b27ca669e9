"""Deskewing: each digit sheared upright by its own second moments, the classic fixed input layer that lets a
linear model (one template per class) read slanted handwriting (LeCun et al.'s MNIST table)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_SHEAR = 1.0
"""Largest shear applied (pixels of horizontal shift per pixel of height): a nearly flat stroke's moments would
otherwise ask for an unbounded one."""


def skew(images: torch.Tensor) -> torch.Tensor:
    """Per image ``(N, 1, H, W)``, the slant of its ink: ``cov(x, y) / var(y)`` of the pixel intensities (0 for a
    blank image or one with no height).

    >>> image = torch.zeros(1, 1, 5, 5)
    >>> image[0, 0, torch.arange(5), torch.arange(5)] = 1.0
    >>> skew(image)
    tensor([1.])
    """
    n, _, height, width = images.shape
    ink = images.reshape(n, height, width).float()
    mass = ink.sum(dim=(1, 2)).clamp_min(1e-6)
    ys = torch.arange(height, dtype=ink.dtype, device=ink.device).view(1, height, 1)
    xs = torch.arange(width, dtype=ink.dtype, device=ink.device).view(1, 1, width)
    cy = (ink * ys).sum(dim=(1, 2)) / mass
    cx = (ink * xs).sum(dim=(1, 2)) / mass
    dy, dx = ys - cy.view(n, 1, 1), xs - cx.view(n, 1, 1)
    var_y = (ink * dy * dy).sum(dim=(1, 2)) / mass
    cov = (ink * dx * dy).sum(dim=(1, 2)) / mass
    return cov / var_y.clamp_min(1e-6)


def deskew(images: torch.Tensor) -> torch.Tensor:
    """Images ``(N, 1, H, W)`` with pixels in [0, 1], each sheared horizontally about its centre of mass by its
    :func:`skew` (bounded by :data:`MAX_SHEAR`), so that its ink's second-moment slant becomes 0; the centre of
    mass stays where it was. Batched through ``affine_grid``/``grid_sample``, which ONNX exports."""
    n, _, height, width = images.shape
    ink = images.reshape(n, height, width)
    mass = ink.sum(dim=(1, 2)).clamp_min(1e-6)
    ys = torch.arange(height, dtype=images.dtype, device=images.device).view(1, height, 1)
    cy = (ink * ys).sum(dim=(1, 2)) / mass
    alpha = skew(images).clamp(-MAX_SHEAR, MAX_SHEAR).to(images.dtype)
    # output pixel (x, y) reads input pixel (x + alpha (y - cy), y), in grid_sample's [-1, 1] coordinates
    zeros, ones = torch.zeros_like(alpha), torch.ones_like(alpha)
    theta = torch.stack(
        [
            torch.stack([ones, alpha * height / width, alpha * (height - 1 - 2 * cy) / width], dim=1),
            torch.stack([zeros, ones, zeros], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
