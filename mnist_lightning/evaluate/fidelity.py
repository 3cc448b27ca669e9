"""The preprocessing fidelity suite: how faithfully the predict path treats MNIST's own digits, and how well it
still reads typed digits and phone photos of MNIST digits.

For every model, its accuracy on the official test pixels directly, through ``predict_images`` on the same
digits as tensors, and on some of them saved as PNG files and read back as the predict command reads files (the
model's own accuracy on those same digits beside it). Then two stand-ins for real pictures: typed digits (PIL's
font at many sizes, colours and positions) and synthetic photos (test digits blown up to 200-800 px, dark ink on
unevenly lit, noisy, JPEG-compressed paper, half of them with a thin pen), each beside the model's accuracy on the
original 28x28 digits. Also how many test digits come back pixel-identical. Everything is seeded.
"""

from __future__ import annotations

import io
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from mnist_lightning.evaluate.drawing import thin
from mnist_lightning.evaluate.report import heading, percent, table
from mnist_lightning.inference import predict_digits, predict_images
from mnist_lightning.preprocessing import preprocess


def accuracy(labels: torch.Tensor, truth: torch.Tensor) -> float | None:
    return (labels == truth).float().mean().item() if len(truth) else None


def typed_digits(count_per_digit: int = 20, seed: int = 0) -> tuple[list[Image.Image], torch.Tensor]:
    """PIL's font digits at random sizes, canvases, positions and colours."""
    rng = random.Random(seed)
    images, truth = [], []
    for digit in range(10):
        for _ in range(count_per_digit):
            size = rng.choice([32, 64, 128, 200])
            canvas = (size + rng.randint(10, 160), int(size * 1.3) + rng.randint(10, 120))
            paper, ink = rng.choice([("white", "black"), ("black", "white"), ("#f0e6c8", "#102080"), ("#ccc", "#333")])
            at = (rng.randint(0, canvas[0] - size // 2 - 5), rng.randint(0, canvas[1] - int(size * 1.25)))
            image = Image.new("RGB", canvas, paper)
            ImageDraw.Draw(image).text(at, str(digit), fill=ink, font=ImageFont.load_default(size=size))
            images.append(image)
            truth.append(digit)
    return images, torch.tensor(truth)


def synthetic_photo(
    digit: torch.Tensor, rng: np.random.Generator, noise: torch.Generator, thin_pen: bool
) -> Image.Image:
    """One 28x28 MNIST digit as a phone photo of it: large, anywhere on a bigger page, dark ink on light paper.

    A thin pen draws the digit's centre lines 3 or 5 px wide, however large the digit: as a ballpoint
    photographed from close up.
    """
    side = int(rng.integers(200, 801))
    big = F.interpolate(digit[None], size=(side, side), mode="bicubic", align_corners=False)[0, 0].clamp(0, 1)
    if thin_pen:
        width = int(rng.choice([3, 5]))
        lines = torch.from_numpy(thin(big.numpy() > 0.5)).float()
        big = F.max_pool2d(lines[None, None], width, stride=1, padding=width // 2)[0, 0]
        big = F.avg_pool2d(big[None, None], 3, stride=1, padding=1)[0, 0]  # the pen's soft edge
    page_h, page_w = (int(side * rng.uniform(1.1, 2.0)) for _ in range(2))
    top, left = int(rng.integers(0, page_h - side + 1)), int(rng.integers(0, page_w - side + 1))
    canvas = torch.zeros(page_h, page_w)
    canvas[top : top + side, left : left + side] = big
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, page_h), torch.linspace(-1, 1, page_w), indexing="ij")
    paper = rng.uniform(0.7, 0.95) + rng.uniform(-0.1, 0.1) * xs + rng.uniform(-0.1, 0.1) * ys  # uneven light
    ink_level = rng.uniform(0.05, 0.35)
    grain = torch.randn(page_h, page_w, generator=noise) * rng.uniform(0.0, 0.03)
    gray = paper - canvas * (paper - ink_level) + grain
    tint = torch.tensor(rng.uniform(0.85, 1.0, size=3), dtype=torch.float32)
    rgb = (gray.clamp(0, 1)[..., None] * tint * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(rng.integers(50, 95)))
    buffer.seek(0)
    return Image.open(buffer)


def pixel_fidelity(pixels: torch.Tensor) -> tuple[float, float]:
    """Share of digits that come back pixel-identical (within 1/255), and the mean absolute pixel change."""
    out = torch.stack([preprocess(p) for p in pixels])
    diff = (out - pixels).abs().flatten(1)
    return (diff.max(1).values <= 1 / 255 + 1e-6).float().mean().item(), diff.mean().item()


def _as_files(pixels: torch.Tensor) -> torch.Tensor:
    """The digits saved as PNG files and read back as the predict command reads a file."""
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, digit in enumerate(pixels):
            paths.append(Path(folder) / f"{index:05d}.png")
            Image.fromarray((digit[0] * 255).round().byte().numpy()).save(paths[-1])
        return torch.stack([preprocess(path) for path in paths])


def evaluate(
    models: dict[str, torch.nn.Module], pixels: torch.Tensor, labels: torch.Tensor, png: int = 1000, photos: int = 300
) -> dict:
    """Every model on MNIST's test ``pixels`` (``(N, 1, 28, 28)`` in [0, 1]) through each path: the JSON result."""
    png, photos = min(png, len(labels)), min(photos, len(labels))
    identical, change = pixel_fidelity(pixels)
    rng, noise = np.random.default_rng(0), torch.Generator().manual_seed(0)
    chosen = torch.from_numpy(rng.choice(len(labels), size=photos, replace=False))
    photo_images = [synthetic_photo(pixels[i], rng, noise, thin_pen=k % 2 == 1) for k, i in enumerate(chosen.tolist())]
    thin_pen = torch.arange(photos) % 2 == 1
    typed, typed_truth = typed_digits()
    files = _as_files(pixels[:png])
    photo_truth, png_truth = labels[chosen], labels[:png]
    per_model = {}
    for name, model in models.items():
        with torch.no_grad():
            own = model(pixels).argmax(1)
        photo_labels = predict_images(model, photo_images).labels
        per_model[name] = {
            "test_pixels": accuracy(own, labels),
            "predict_images": accuracy(predict_images(model, pixels).labels, labels),
            "png_files": accuracy(predict_digits(model, files).labels, png_truth),
            "png_files_model": accuracy(own[:png], png_truth),
            "typed": accuracy(predict_images(model, typed).labels, typed_truth),
            "photos": accuracy(photo_labels, photo_truth),
            "photos_thin_pen": accuracy(photo_labels[thin_pen], photo_truth[thin_pen]),
            "photos_model": accuracy(own[chosen], photo_truth),
        }
    return {
        "suite": "fidelity",
        "images": len(labels),
        "pixel_identical": identical,
        "mean_change": change,
        "counts": {"png_files": png, "typed": len(typed_truth), "photos": photos},
        "models": per_model,
    }


def tables(result: dict, markdown: bool = False) -> str:
    """A row per model: each path beside what the model reads on the same digits as MNIST drew them."""
    counts = result["counts"]
    header = [
        "model",
        f"test pixels ({result['images']:,})",
        "predict_images",
        f"PNG files ({counts['png_files']:,}; model on them)",
        f"typed ({counts['typed']})",
        f"photos ({counts['photos']}): all / thin pen (model on originals)",
    ]
    rows = [
        [
            name,
            percent(m["test_pixels"]),
            percent(m["predict_images"]),
            f"{percent(m['png_files'])} ({percent(m['png_files_model'])})",
            percent(m["typed"]),
            f"{percent(m['photos'])} / {percent(m['photos_thin_pen'])} ({percent(m['photos_model'])})",
        ]
        for name, m in result["models"].items()
    ]
    worst = min(result["models"].values(), key=lambda m: m["photos"] or 0.0, default=None)
    if worst is not None and len(rows) > 1:
        rows.append(["worst on photos", "", "", "", "", percent(worst["photos"])])
    title = (
        f"the preprocessing on MNIST's test digits: {percent(result['pixel_identical'])} pixel-identical, "
        f"mean |change| {result['mean_change']:.5f}"
    )
    return "\n".join([heading(title, markdown), "", table(header, rows, markdown)])
