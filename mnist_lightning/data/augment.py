"""Augmentation of whole training batches on the device they are trained on.

torchvision's transforms draw one random transform per call (per image, on the CPU, before collate); these
draw one per image of a batch in a single call, from a generator the caller seeds per batch, so that a
resumed run augments exactly as an uninterrupted one.

The kinds imitate how real handwriting differs from MNIST's test digits: slant, position and size
(``affine``), wobbly strokes (``elastic``: Simard et al., 2003), pens (``thickness``), focus (``blur``), ink
(``contrast``) and low-resolution scans enlarged (``lowres``). Geometric kinds share one resampling pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

Augmentation = Literal["affine", "elastic", "thickness", "blur", "contrast", "lowres"]
AUGMENTATIONS: tuple[str, ...] = ("affine", "elastic", "thickness", "blur", "contrast", "lowres")
LOW_SIDES = (7, 8, 10, 12)
"""Sides a ``lowres`` digit is reduced to: a digit scanned or drawn in 8-16 px and enlarged keeps about this much."""


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high, generator=generator)


def affine_grid(
    images: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """A sampling grid ``(N, H, W, 2)`` that rotates, shifts and scales every image by its own random amount."""
    n, device = images.shape[0], images.device
    angle = torch.deg2rad(_uniform(n, -degrees, degrees, generator, device))
    factor = 1.0 / _uniform(n, *scale, generator, device)
    cos, sin = torch.cos(angle) * factor, torch.sin(angle) * factor
    shift_x = _uniform(n, -2 * translate, 2 * translate, generator, device)
    shift_y = _uniform(n, -2 * translate, 2 * translate, generator, device)
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    return F.affine_grid(theta, list(images.shape), align_corners=False)


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
    grid = affine_grid(images, generator, degrees, translate, scale)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """torchvision's Gaussian blur of every channel of ``(N, C, H, W)``, its kernel wide enough for ``sigma``."""
    radius = max(1, math.ceil(3 * sigma))
    return TF.gaussian_blur(images, [2 * radius + 1] * 2, [sigma, sigma])


def elastic_displacement(
    images: torch.Tensor, generator: torch.Generator, alpha: float = 34.0, sigma: float = 4.0
) -> torch.Tensor:
    """Simard et al.'s elastic distortion as a grid offset ``(N, H, W, 2)``: uniform noise per pixel, smoothed
    with a Gaussian of ``sigma`` pixels and scaled by ``alpha`` pixels (their MNIST setting: about 1.4 px of
    smooth wobble)."""
    n, _, h, w = images.shape
    noise = torch.empty(n, 2, h, w, device=images.device).uniform_(-1, 1, generator=generator)
    pixels = gaussian_blur(noise, sigma) * alpha
    scale = torch.tensor([2.0 / w, 2.0 / h], device=images.device)  # pixels to grid_sample's [-1, 1] units
    return pixels.permute(0, 2, 3, 1) * scale


def random_thickness(
    images: torch.Tensor, generator: torch.Generator, thinner: float = 0.5, thicker: float = 1.0
) -> torch.Tensor:
    """Thicker or thinner strokes: each image moves towards its grey dilation or erosion (3x3 max-pooling) by its
    own random share in ``[-thinner, thicker]`` (negative: thinner). A full 3x3 erosion wipes out MNIST's
    2-3 px strokes, hence at most half of it."""
    n = images.shape[0]
    share = _uniform(n, -thinner, thicker, generator, images.device).view(n, 1, 1, 1)
    dilated = F.max_pool2d(images, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-images, 3, stride=1, padding=1)
    target = torch.where(share > 0, dilated, eroded)
    return images + share.abs() * (target - images)


def random_blur(images: torch.Tensor, generator: torch.Generator, sigma: float = 1.0) -> torch.Tensor:
    """Out-of-focus digits: each image moves towards its Gaussian blur (``sigma`` pixels) by a random share."""
    n = images.shape[0]
    share = _uniform(n, 0.0, 1.0, generator, images.device).view(n, 1, 1, 1)
    return torch.lerp(images, gaussian_blur(images, sigma), share)


def random_contrast(
    images: torch.Tensor, generator: torch.Generator, gamma: tuple[float, float] = (0.6, 1.6)
) -> torch.Tensor:
    """Soft or hard ink: a random gamma per image (log-uniform in ``gamma``), then a random ink level in [0.7, 1]."""
    n, device = images.shape[0], images.device
    power = torch.exp(_uniform(n, math.log(gamma[0]), math.log(gamma[1]), generator, device)).view(n, 1, 1, 1)
    level = _uniform(n, 0.7, 1.0, generator, device).view(n, 1, 1, 1)
    return images.clamp(min=0).pow(power) * level


def random_low_resolution(
    images: torch.Tensor, generator: torch.Generator, share: float = 0.3, levels: int = 16
) -> torch.Tensor:
    """A random ``share`` of the images as a scan of a few pixels enlarged again: reduced to a side from
    :data:`LOW_SIDES` (area average), rounded to ``levels`` grey levels, enlarged bilinearly, and stretched back to
    full ink (as preprocessing stretches a faint scan)."""
    n = images.shape[0]
    pick = torch.randint(
        0, len(LOW_SIDES) + round(len(LOW_SIDES) * (1 - share) / share), (n,), generator=generator, device=images.device
    )
    out = images.clone()
    for index, side in enumerate(LOW_SIDES):
        chosen = pick == index
        small = F.interpolate(images[chosen], size=(side, side), mode="area")
        small = torch.round(small * (levels - 1)) / (levels - 1)
        large = F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)
        out[chosen] = large / large.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
    return out


def augment(images: torch.Tensor, generator: torch.Generator, kinds: Sequence[str]) -> torch.Tensor:
    """Apply ``kinds`` (names from :data:`AUGMENTATIONS`) to a ``(N, 1, H, W)`` batch: geometry first, in one
    resampling pass, then stroke thickness, blur and contrast.

    >>> batch = torch.rand(3, 1, 28, 28)
    >>> out = augment(batch, torch.Generator().manual_seed(0), AUGMENTATIONS)
    >>> out.shape, bool(out.min() >= 0), bool(out.max() <= 1)
    (torch.Size([3, 1, 28, 28]), True, True)
    """
    unknown = set(kinds) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation {sorted(unknown)}; choose from {list(AUGMENTATIONS)}")
    if "affine" in kinds or "elastic" in kinds:
        if "affine" in kinds:
            grid = affine_grid(images, generator)
        else:
            identity = torch.eye(2, 3, device=images.device).expand(images.shape[0], 2, 3)
            grid = F.affine_grid(identity, list(images.shape), align_corners=False)
        if "elastic" in kinds:
            grid = grid + elastic_displacement(images, generator)
        images = F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
    steps = {
        "thickness": random_thickness,
        "blur": random_blur,
        "contrast": random_contrast,
        "lowres": random_low_resolution,
    }
    for kind, step in steps.items():
        if kind in kinds:
            images = step(images, generator)
    return images.clamp_(0, 1)
