"""Benchmark: accuracy on the official test digits transformed the way real inputs differ from MNIST.

    python bench/robustness.py --ckpt LitLogReg=PATH --ckpt LitMLP=PATH --ckpt LitCNN=PATH [--limit 10000]

Every transformed digit goes through the predict path (``mnist_lightning.predict_images``: grayscale, ink
detection, crop, fit into 20x20, centre by mass) exactly as a user's file would, preprocessed once for all the
models; an input the preprocessing refuses (``ImageError``) counts as wrong for every model, and the refusals are
counted. Each transform is seeded per image, so every model sees the same inputs. Writes its table as a section
of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mnist_lightning import MNISTDataModule, load_model
from mnist_lightning.data.augment import gaussian_blur
from mnist_lightning.inference import predict_digits
from mnist_lightning.preprocess import ImageError, preprocess

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from sections import write_section  # noqa: E402

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


def ink_on_paper(digits: torch.Generator, generator: torch.Generator) -> list:
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
"""The key under which :func:`evaluate` counts the inputs the preprocessing refused."""


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


def evaluate(models: dict[str, torch.nn.Module], digits: torch.Tensor, labels: torch.Tensor, chunk: int) -> dict:
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
        print(name, {m: f"{c / len(labels):.2%}" for m, c in correct[name].items()}, file=sys.stderr, flush=True)
    return correct


def report(correct: dict, models: dict[str, str], count: int, command: str) -> str:
    lines = [
        "## Robustness: test digits transformed like real inputs, through the predict path",
        "",
        f"`{command}` on {platform.node()}, {time.strftime('%Y-%m-%d')}: the first {count:,} official test digits, "
        "each transform seeded, every input through `predict_images` (MNIST-style preprocessing). Checkpoints:",
        "",
        *[f"- {name}: `{path}`" for name, path in models.items()],
        "",
        "| transform | what | " + " | ".join(models) + " |",
        "| --- | --- | " + " | ".join("---" for _ in models) + " |",
    ]
    for name, (what, _) in TRANSFORMS.items():
        cells = " | ".join(f"{correct[name][m] / count:.2%}" for m in models)
        refused = correct[name].get(REFUSED, 0)
        lines.append(f"| {name} | {what}{f' ({refused:,} refused as blank)' if refused else ''} | {cells} |")
    worst = {m: min(correct[t][m] for t in TRANSFORMS) / count for m in models}
    lines.append("| **worst** | | " + " | ".join(f"**{worst[m]:.2%}**" for m in models) + " |")
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = BENCH.parent.parent / "shared" / "data"
    parser.add_argument("--data-dir", default=str(default_data if default_data.is_dir() else BENCH.parent / "data"))
    parser.add_argument("--ckpt", action="append", required=True, help="NAME=PATH of a checkpoint; repeat")
    parser.add_argument("--limit", type=int, default=10_000, help="how many test digits (the first ones)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = dict(spec.split("=", 1) for spec in args.ckpt)
    models = {name: load_model(path) for name, path in paths.items()}
    images, labels = MNISTDataModule(data_dir=args.data_dir, download=False).split("test")
    count = min(args.limit, len(labels))
    correct = evaluate(models, images[:count], labels[:count], chunk=500)
    text = report(correct, paths, count, shlex.join(["python", "bench/robustness.py", *sys.argv[1:]]))
    print(text)
    write_section(Path(args.out), text)


if __name__ == "__main__":
    main()
