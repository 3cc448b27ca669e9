"""How faithfully ``preprocess`` treats MNIST digits, and how well it still handles photos and typed digits.

    python bench/preprocess_fidelity.py CKPT [CKPT ...] [--data-dir ../shared/data] [--png 1000] [--photos 300]

For every checkpoint, the accuracy of the model on the official test pixels directly, through
``predict_images`` on the same 10,000 digits as tensors, and through the predict command on ``--png`` of
them saved as PNG files (with the model's own accuracy on those same files beside it). Then two stand-ins
for real pictures: typed digits (PIL's font at many sizes, colours and positions) and synthetic photos
(official test digits blown up to 200-800 px, dark ink on light, unevenly lit, noisy, JPEG-compressed
paper, some with a thin pen), each beside the model's own accuracy on the original 28x28 digits. Also how
many test digits come back pixel-identical. Everything is seeded: the same checkpoints give the same table.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from mnist_lightning import MNISTDataModule, load_model, predict_images, preprocess
from mnist_lightning.predict import classify

REPO = Path(__file__).resolve().parents[1]


def accuracy(labels: torch.Tensor, truth: torch.Tensor) -> float:
    return (labels == truth).float().mean().item() * 100


def typed_digits(count_per_digit: int = 20, seed: int = 0) -> tuple[list[Image.Image], torch.Tensor]:
    """PIL's font digits at random sizes, canvases, positions and colours (as in tests/test_inference.py)."""
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


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image: the centre lines of its strokes, one pixel wide."""
    image = np.pad(mask.astype(np.uint8), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = [np.roll(image, shift, axis=(0, 1)) for shift in _NEIGHBOURS]  # P2..P9, clockwise from north
            count = sum(p)
            transitions = sum((p[i] == 0) & (p[(i + 1) % 8] == 1) for i in range(8))
            if step == 0:
                gone = (p[0] * p[2] * p[4] == 0) & (p[2] * p[4] * p[6] == 0)
            else:
                gone = (p[0] * p[2] * p[6] == 0) & (p[0] * p[4] * p[6] == 0)
            remove = (image == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & gone
            if remove.any():
                image[remove] = 0
                changed = True
    return image[1:-1, 1:-1].astype(bool)


_NEIGHBOURS = [(1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1)]


def synthetic_photo(digit: torch.Tensor, rng: np.random.Generator, thin: bool) -> Image.Image:
    """One 28x28 MNIST digit as a phone photo of it: large, anywhere on a bigger page, dark ink on light paper.

    A thin pen draws the digit's centre lines 3 or 5 px wide, however large the digit: as a ballpoint
    photographed from close up.
    """
    side = int(rng.integers(200, 801))
    big = F.interpolate(digit[None], size=(side, side), mode="bicubic", align_corners=False)[0, 0].clamp(0, 1)
    if thin:
        pen = int(rng.choice([3, 5]))
        lines = torch.from_numpy(skeleton(big.numpy() > 0.5)).float()
        big = F.max_pool2d(lines[None, None], pen, stride=1, padding=pen // 2)[0, 0]
        big = F.avg_pool2d(big[None, None], 3, stride=1, padding=1)[0, 0]  # the pen's soft edge
    page_h, page_w = (int(side * rng.uniform(1.1, 2.0)) for _ in range(2))
    top, left = int(rng.integers(0, page_h - side + 1)), int(rng.integers(0, page_w - side + 1))
    canvas = torch.zeros(page_h, page_w)
    canvas[top : top + side, left : left + side] = big
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, page_h), torch.linspace(-1, 1, page_w), indexing="ij")
    paper = rng.uniform(0.7, 0.95) + rng.uniform(-0.1, 0.1) * xs + rng.uniform(-0.1, 0.1) * ys  # uneven light
    ink_level = rng.uniform(0.05, 0.35)
    gray = paper - canvas * (paper - ink_level) + torch.randn(page_h, page_w) * rng.uniform(0.0, 0.03)
    tint = torch.tensor(rng.uniform(0.85, 1.0, size=3), dtype=torch.float32)
    rgb = (gray.clamp(0, 1)[..., None] * tint * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(rng.integers(50, 95)))
    buffer.seek(0)
    return Image.open(buffer)


def fidelity(pixels: torch.Tensor) -> tuple[float, float]:
    """Share of digits that come back pixel-identical (within 1/255), and the mean absolute pixel change."""
    out = torch.stack([preprocess(p) for p in pixels])
    diff = (out - pixels).abs().flatten(1)
    return (diff.max(1).values <= 1 / 255 + 1e-6).float().mean().item() * 100, diff.mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", nargs="+", help="checkpoints to measure")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--png", type=int, default=1000, help="test digits saved as PNG for the predict command")
    parser.add_argument("--photos", type=int, default=300, help="synthetic photos (half of them with a thin pen)")
    args = parser.parse_args()
    torch.manual_seed(0)
    pixels, labels = MNISTDataModule(args.data_dir, download=False).split("test")
    identical, change = fidelity(pixels)
    print(f"official test digits through preprocess: {identical:.2f}% pixel-identical, mean |change| {change:.5f}")

    rng = np.random.default_rng(0)
    chosen = torch.from_numpy(rng.choice(len(labels), size=args.photos, replace=False))
    photos = [synthetic_photo(pixels[i], rng, thin=k % 2 == 1) for k, i in enumerate(chosen.tolist())]
    typed, typed_truth = typed_digits()
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.png):
            Image.fromarray((pixels[i, 0] * 255).round().byte().numpy()).save(Path(folder) / f"{i:05d}.png")
        rows = [
            "| checkpoint | model on test pixels | `predict_images` (10k tensors) | PNG files, predict command "
            f"(model on the same {args.png}) | typed digits ({len(typed_truth)}) | synthetic photos ({args.photos}): "
            "all / thin pen (model on the originals) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for ckpt in args.ckpt:
            model = load_model(ckpt)
            with torch.no_grad():
                own = model(pixels).argmax(1)
            via_tensors = predict_images(model, pixels).labels
            files = classify(ckpt, [folder])
            via_png = torch.tensor([row.get("label", -1) for row in files])
            photo_labels = predict_images(model, photos).labels
            thin = torch.arange(args.photos) % 2 == 1
            photo_truth, png_truth = labels[chosen], labels[: args.png]
            rows.append(
                f"| {type(model).__name__} `{Path(ckpt).name}` | {accuracy(own, labels):.2f}% "
                f"| {accuracy(via_tensors, labels):.2f}% "
                f"| {accuracy(via_png, png_truth):.2f}% ({accuracy(own[: args.png], png_truth):.2f}%) "
                f"| {accuracy(predict_images(model, typed).labels, typed_truth):.1f}% "
                f"| {accuracy(photo_labels, photo_truth):.1f}% "
                f"/ {accuracy(photo_labels[thin], photo_truth[thin]):.1f}% "
                f"({accuracy(own[chosen], photo_truth):.1f}%) |"
            )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
