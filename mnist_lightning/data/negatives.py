"""Images that are not digits, for teaching a model to say so: letters, scribbles and noise.

A classifier trained on digits only answers a digit for anything, often sure of it. Trained beside these
images with the outlier-exposure loss (``LitClassifier.outlier_weight``: their target is the uniform
distribution), it spreads its probability for anything unlike a digit, and the predict command, the API and the
page then say "does not look like a digit" (``inference.NOT_A_DIGIT_BELOW``). Every image goes through
:func:`~mnist_lightning.preprocessing.preprocess`, as a user's picture would. The letters are drawn in the
handwriting suite's TUNING hands only (plus Pillow's own font): the held-out hands' letters stay unseen, so the
evaluation's "not a digit" figure is honest.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from mnist_lightning.errors import ConfigError
from mnist_lightning.images import ImageError
from mnist_lightning.preprocessing import preprocess

FONT_ROOT = Path("/usr/share/fonts")
LETTER_FONTS = (
    "opentype/bwht/BecauseWeBuild-Regular.otf",
    "opentype/bwht/BecauseWeConnect-Regular.otf",
    "opentype/bwht/BecauseWeCreate-Regular.otf",
    "truetype/humor-sans/Humor-Sans.ttf",
    "truetype/leckerli-one/LeckerliOne-Regular.ttf",
)
"""The handwriting suite's tuning hands (``evaluate.fonts.TUNING``), under ``FONT_ROOT``."""
LETTER_PACKAGES = "fonts-bwht fonts-humor-sans fonts-leckerli-one"
LETTERS = "ACEFHKMNPRUVWXacdefhkmnpruvwx"
"""Letters a careful reader would not take for a digit: not O o D Q (0), I i j l L T t (1, 7), Z z (2), S s (5),
G b (6), B (8), g q y Y (9, 4)."""
KINDS = ("letter", "scribble", "noise")
SHARES = (0.5, 0.35, 0.15)
"""How the images divide between the kinds: letters are the commonest thing that is written and is no digit."""
NEGATIVE_LABEL = -1
"""The label of a non-digit in a training batch (``F.cross_entropy(ignore_index=-1)`` leaves it out)."""


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def letter_fonts() -> list[str]:
    """The installed letter fonts and Pillow's built-in one (``""``); refused when no hand is installed."""
    found = [str(FONT_ROOT / name) for name in LETTER_FONTS if (FONT_ROOT / name).is_file()]
    if not found:
        raise ConfigError(
            f"--data.negatives draws letters in handwriting fonts, and none is installed under {FONT_ROOT}: "
            f"run apt-get install {LETTER_PACKAGES}, or set --data.negatives 0"
        )
    return [*found, ""]


def _letter(rng: random.Random, fonts: Sequence[str]) -> Image.Image:
    """One letter on white paper: a random font, size, pen width, slant and tilt."""
    size = rng.randint(36, 72)
    font = _font(rng.choice(fonts), size)
    char, stroke = rng.choice(LETTERS), rng.choice((0, 0, 1, 2, 4))
    canvas = Image.new("L", (3 * size, 2 * size), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 4), char, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    shear = rng.uniform(-0.3, 0.3)
    canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, (1, shear, -shear * size, 0, 1, 0))
    canvas = canvas.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BICUBIC, expand=True)
    return Image.eval(canvas, lambda v: 255 - v)


def _curve(rng: random.Random, points: int) -> list[tuple[float, float]]:
    """A smooth random path through ``points`` control points in a 200x200 box (Chaikin corner cutting)."""
    path = [(rng.uniform(20, 180), rng.uniform(20, 180)) for _ in range(points)]
    for _ in range(3):
        path = [p for a, b in itertools.pairwise(path) for p in (_mix(a, b, 0.25), _mix(a, b, 0.75))]
    return path


def _mix(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _scribble(rng: random.Random) -> Image.Image:
    """Squiggles, spirals, hatching or stars, drawn with a round pen as the page's pointer draws."""
    image = Image.new("L", (200, 200), 255)
    draw = ImageDraw.Draw(image)
    width = rng.randint(6, 18)
    shape = rng.choice(("squiggle", "squiggle", "spiral", "hatch", "star"))
    if shape == "squiggle":
        paths = [_curve(rng, rng.randint(5, 9)) for _ in range(rng.randint(1, 2))]
    elif shape == "spiral":
        turns, phase = rng.uniform(1.5, 3.0), rng.uniform(0, 2 * math.pi)
        steps = [k / 80 for k in range(81)]
        paths = [
            [
                (
                    100 + 80 * t * math.cos(phase + 2 * math.pi * turns * t),
                    100 + 80 * t * math.sin(phase + 2 * math.pi * turns * t),
                )
                for t in steps
            ]
        ]
    elif shape == "hatch":
        angle, count = rng.uniform(0, math.pi), rng.randint(3, 6)
        dx, dy = math.cos(angle), math.sin(angle)
        paths = [
            [(100 - 80 * dx + o * dy, 100 - 80 * dy - o * dx), (100 + 80 * dx + o * dy, 100 + 80 * dy - o * dx)]
            for o in np.linspace(-60, 60, count)
        ]
        paths += (
            [
                [(100 - 80 * dy + o * dx, 100 + 80 * dx + o * dy), (100 + 80 * dy + o * dx, 100 - 80 * dx + o * dy)]
                for o in np.linspace(-60, 60, count)
            ]
            if rng.random() < 0.5
            else []
        )
    else:
        spikes, phase = rng.choice((5, 7, 9)), rng.uniform(0, 2 * math.pi)
        paths = [
            [
                (
                    100 + 80 * math.cos(phase + 2 * math.pi * 2 * k / spikes),
                    100 + 80 * math.sin(phase + 2 * math.pi * 2 * k / spikes),
                )
                for k in range(spikes + 1)
            ]
        ]
    for path in paths:
        draw.line(path, fill=0, width=width, joint="curve")
        for x, y in (path[0], path[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)
    return image.resize((80, 80), Image.Resampling.BOX)


def _noise(rng: random.Random) -> Image.Image:
    """Random pixels, dots or blotches: what a camera pointed at nothing, or a smudge, gives."""
    generator = np.random.default_rng(rng.getrandbits(32))
    side = rng.randint(8, 96)
    kind = rng.choice(("pixels", "dots", "blotches"))
    if kind == "pixels":
        pixels = generator.uniform(0, 255, (side, side))
    elif kind == "dots":
        pixels = np.full((side, side), 255.0)
        count = rng.randint(8, max(9, side * side // 12))
        pixels[generator.integers(0, side, count), generator.integers(0, side, count)] = 0
    else:
        ys, xs = np.mgrid[0:side, 0:side]
        pixels = np.full((side, side), 255.0)
        for _ in range(rng.randint(2, 6)):
            cy, cx, r = generator.uniform(0, side), generator.uniform(0, side), generator.uniform(side / 12, side / 4)
            pixels -= 255 * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * r * r))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")


def draw_negative(kind: str, rng: random.Random, fonts: Sequence[str]) -> Image.Image:
    """One picture of ``kind`` (``letter``, ``scribble`` or ``noise``) as a user might send it."""
    if kind == "letter":
        return _letter(rng, fonts)
    return _scribble(rng) if kind == "scribble" else _noise(rng)


def negative_images(count: int, seed: int) -> torch.Tensor:
    """``count`` non-digits, MNIST-like ``(count, 1, 28, 28)`` uint8, the same for the same seed and fonts.

    Pictures the preprocessing refuses (blank noise) are drawn again: the model only ever sees what a user's
    picture would become."""
    fonts, rng = letter_fonts(), random.Random(seed)
    images = []
    while len(images) < count:
        kind = rng.choices(KINDS, SHARES)[0]
        try:
            digit = preprocess(draw_negative(kind, rng, fonts))
        except ImageError:
            continue
        images.append(digit.mul(255).round().to(torch.uint8))
    return torch.stack(images) if images else torch.zeros((0, 1, 28, 28), dtype=torch.uint8)
