"""The robustness suite: MNIST's own test digits, transformed the ways real inputs differ from them.

Every transformed digit goes through the predict path (``predict_images``'s preprocessing: grayscale, ink
detection, crop, fit into 20x20, centre by mass) exactly as a user's file would, preprocessed once for all the
models; an input the preprocessing refuses (``ImageError``) counts as wrong for every model, and the refusals are
counted. Each transform is seeded, so every model sees the same inputs.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mnist_lightning.data.augment import gaussian_blur
from mnist_lightning.evaluate.report import heading, percent, share, table
from mnist_lightning.inference import ImageError, predict_digits
from mnist_lightning.preprocessing import preprocess

Transform = Callable[[torch.Tensor, torch.Generator], list]
"""Turns ``(N, 1, 28, 28)`` test digits (white on black, [0, 1]) into N inputs for ``predict_images``."""


def upscale(digits: torch.Tensor, factor: int) -> torch.Tensor:
    """The digits at ``factor`` times the resolution (a smooth pen stroke rather than big pixels)."""
    return F.interpolate(digits, scale_factor=factor, mode="bicubic", align_corners=False).clamp(0, 1)


def dilate(images: torch.Tensor, radius: int) -> torch.Tensor:
    return F.max_pool2d(images, 2 * radius + 1, stride=1, padding=radius)


def as_list(images: torch.Tensor) -> list[torch.Tensor]:
    return list(images[:, 0])


def on_canvas(digits: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """Each digit at a random spot of a larger black canvas."""
    n, _, h, w = digits.shape
    canvas = torch.zeros(n, 1, side, side)
    for k in range(n):
        top, left = (int(v) for v in torch.randint(0, side - h + 1, (2,), generator=generator))
        canvas[k, :, top : top + h, left : left + w] = digits[k]
    return canvas


def rotate(digits: torch.Tensor, generator: torch.Generator, low: float, high: float) -> torch.Tensor:
    """Each digit rotated by a random angle of ``low``-``high`` degrees either way, on a canvas it fits in."""
    n = digits.shape[0]
    padded = F.pad(digits, (8, 8, 8, 8))
    sign = torch.randint(0, 2, (n,), generator=generator) * 2 - 1
    angle = torch.deg2rad(torch.empty(n).uniform_(low, high, generator=generator) * sign)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = angle.cos(), -angle.sin(), angle.sin(), angle.cos()
    grid = F.affine_grid(theta, list(padded.shape), align_corners=False)
    return F.grid_sample(padded, grid, align_corners=False)


def jpeg(pixels: torch.Tensor, quality: int, rgb: tuple[float, float, float] | None = None) -> Image.Image:
    """A grey ``(H, W)`` image in [0, 1], optionally tinted, through a JPEG round trip."""
    gray = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    image = Image.fromarray(gray)
    if rgb is not None:
        channels = [np.clip(gray * c, 0, 255).astype(np.uint8) for c in rgb]
        image = Image.fromarray(np.stack(channels, axis=-1))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert(image.mode)


def ink_on_paper(digits: torch.Tensor, generator: torch.Generator) -> list:
    """Dark ink on light paper, scanned at 4x and saved as a JPEG (quality 30)."""
    paper = 1.0 - 0.85 * upscale(digits, 4)
    noise = torch.randn(paper.shape, generator=generator) * 0.02
    return [jpeg(p[0] + n[0], 30) for p, n in zip(paper, noise, strict=True)]


def photographed(digits: torch.Tensor, generator: torch.Generator) -> list:
    """A phone photo: 4x, slightly rotated and soft, grey pencil on uneven light paper, sensor noise, JPEG."""
    big = gaussian_blur(rotate(upscale(digits, 4), generator, 0.0, 6.0), 1.5)
    n, w = big.shape[0], big.shape[-1]
    ramp = torch.linspace(0, 1, w).view(1, 1, 1, w)
    direction = torch.empty(n, 1, 1, 1).uniform_(-1, 1, generator=generator)
    paper = 0.88 + 0.07 * direction * (ramp - 0.5) * 2  # light falls off across the page
    ink_level = torch.empty(n, 1, 1, 1).uniform_(0.45, 0.65, generator=generator)
    image = paper - ink_level * big + torch.randn(big.shape, generator=generator) * 0.03
    return [jpeg(p[0], 60, rgb=(1.0, 0.97, 0.9)) for p in image]


TRANSFORMS: dict[str, tuple[str, Transform]] = {
    "clean": ("the test digits as they are", lambda d, g: as_list(d)),
    "thicker": ("strokes 2 px wider (a marker): grey dilation, radius 1", lambda d, g: as_list(dilate(d, 1))),
    "thinner": (
        "strokes about 1 px narrower (a fine pen): erosion at 4x, radius 2",
        lambda d, g: as_list(-dilate(-upscale(d, 4), 2)),
    ),
    "off-centre": ("anywhere on a 64x64 canvas", lambda d, g: as_list(on_canvas(d, 64, g))),
    "smaller": (
        "the whole 28x28 image shrunk to 11x11 px (few pixels)",
        lambda d, g: as_list(F.interpolate(d, size=11, mode="area")),
    ),
    "larger": ("drawn at 6x (168 px) on a 224x224 image", lambda d, g: as_list(on_canvas(upscale(d, 6), 224, g))),
    "rotated": ("rotated 10-20 degrees either way", lambda d, g: as_list(rotate(d, g, 10.0, 20.0))),
    "blurred": ("out of focus: Gaussian blur, sigma 1.5 px at 28x28", lambda d, g: as_list(gaussian_blur(d, 1.5))),
    "ink-on-paper-jpeg": ("dark ink on light paper, 4x, noise, JPEG quality 30", ink_on_paper),
    "photographed": (
        "4x, tilted up to 6 degrees, soft, grey ink on unevenly lit tinted paper, noise, JPEG 60",
        photographed,
    ),
}

REFUSED = "refused"
"""The key under which :func:`count_correct` counts the inputs the preprocessing refused."""


def preprocessed(inputs: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs as ``predict_images`` preprocesses them, once for every model; and which ones the preprocessing
    refused (``ImageError``: they count as wrong, and are counted)."""
    digits, refused = [], []
    for image in inputs:
        try:
            digits.append(preprocess(image))
            refused.append(False)
        except ImageError:
            digits.append(torch.zeros(1, 28, 28))
            refused.append(True)
    return torch.stack(digits), torch.tensor(refused)


def count_correct(
    models: dict[str, torch.nn.Module], digits: torch.Tensor, labels: torch.Tensor, chunk: int = 500
) -> dict[str, dict[str, int]]:
    """Correct predictions per transform and model, and refusals per transform (key ``REFUSED``), one chunk of
    digits at a time (bounded memory)."""
    correct = {name: dict.fromkeys([*models, REFUSED], 0) for name in TRANSFORMS}
    for name, (_, transform) in TRANSFORMS.items():
        generator = torch.Generator().manual_seed(0)
        for start in range(0, len(labels), chunk):
            inputs, refused = preprocessed(transform(digits[start : start + chunk], generator))
            correct[name][REFUSED] += int(refused.sum())
            for model_name, model in models.items():
                right = predict_digits(model, inputs).labels == labels[start : start + chunk]
                correct[name][model_name] += int((right & ~refused).sum())
    return correct


def result(correct: dict[str, dict[str, int]], models: list[str], count: int) -> dict:
    """The suite's JSON result from :func:`count_correct`'s counts on ``count`` test digits."""
    per_model = {}
    for model in models:
        accuracy = {name: share(correct[name][model], count) for name in TRANSFORMS}
        worst = min(accuracy, key=lambda name: correct[name][model])
        per_model[model] = {"transforms": accuracy, "worst_transform": {"name": worst, "accuracy": accuracy[worst]}}
    transforms = {name: {"what": what, "refused": correct[name][REFUSED]} for name, (what, _) in TRANSFORMS.items()}
    return {"suite": "robustness", "images": count, "transforms": transforms, "models": per_model}


def evaluate(models: dict[str, torch.nn.Module], digits: torch.Tensor, labels: torch.Tensor, chunk: int = 500) -> dict:
    """Every model on every transform of ``digits`` (MNIST test digits, ``(N, 1, 28, 28)`` in [0, 1])."""
    return result(count_correct(models, digits, labels, chunk), list(models), len(labels))


def tables(result: dict, markdown: bool = False) -> str:
    """A row per transform (with its refusals), then each model's worst transform: the figure a mean hides."""
    models = result["models"]
    rows = []
    for name, entry in result["transforms"].items():
        refused = f" ({entry['refused']:,} refused as blank)" if entry["refused"] else ""
        rows.append([name, entry["what"] + refused, *(percent(m["transforms"][name]) for m in models.values())])
    worst = [f"{percent(m['worst_transform']['accuracy'])} ({m['worst_transform']['name']})" for m in models.values()]
    rows.append([heading("worst", markdown), "", *worst])
    title = f"MNIST test digits transformed like real inputs: the first {result['images']:,}, through the predict path"
    return "\n".join([heading(title, markdown), "", table(["transform", "what", *models], rows, markdown)])
