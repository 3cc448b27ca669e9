"""The not-digits suite's images: letters, scribbles and noise, none of which the training ever sees.

Letters are written in the HELD-OUT fonts (training's letters come from the tuning fonts), scribbles are drawn
with this module's own shapes on the serving page's canvas as its pointer draws them, and the noise images are
small pictures of nothing. Every image is seeded by what it is, the same on every machine and run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

from mnist_lightning.evaluate.renderings import draw, seed_of
from mnist_lightning.evaluate.strokes import PAGE_PEN, PAGE_SIDE, Stroke, curve, page, sample

LETTERS = "ACEFHJKMNPRUVWXY"
"""Capital letters a careful reader would not read as a digit. Left out: B (8), D O Q (0), G (6), I L T (1, 7),
S (5), Z (2)."""
LETTER_RENDERINGS = ("clean", "paper", "marker", "canvas")
SCRIBBLES = ("squiggle", "spiral", "hatch", "star", "zigzag", "loops")
NOISES = ("pixels", "dots", "blotches")
PER_SHAPE = 20
"""Scribbles of each shape, and noise images of each kind, per variant."""
KINDS = {
    "letters": f"{', '.join(LETTERS)} in the held-out fonts, drawn {', '.join(LETTER_RENDERINGS)}",
    "scribbles": f"{', '.join(SCRIBBLES)} drawn with the page's pen on its canvas, as its PNG",
    "noise": "random grey pixels (8-64 px), scattered dots, blurred blotches on paper",
}


class NotDigit(NamedTuple):
    image: Image.Image
    label: str
    """The letter, or the shape or noise drawn."""
    kind: str
    rendering: str
    """``kind/how``: ``letters/clean``, ``scribbles/spiral``, ``noise/dots``."""


def scribble(shape: str, rng: random.Random) -> list[Stroke]:
    """One scribble of ``shape`` on the page, in page pixels, before the pointer samples it."""
    cx, cy = PAGE_SIDE / 2 + rng.uniform(-30, 30), PAGE_SIDE / 2 + rng.uniform(-30, 30)
    radius, phase = rng.uniform(60, 105), rng.uniform(0, 2 * math.pi)
    if shape == "squiggle":
        points = [
            (cx + rng.uniform(-radius, radius), cy + rng.uniform(-radius, radius)) for _ in range(rng.randint(6, 10))
        ]
        return [curve(*points)]
    if shape == "spiral":
        t = np.linspace(0, 1, 200)
        angle = phase + 2 * math.pi * rng.uniform(2.0, 3.5) * t * rng.choice((-1, 1))
        return [np.c_[cx + radius * t * np.cos(angle), cy + radius * t * np.sin(angle)]]
    if shape == "hatch":  # two sets of parallel lines at least two pen widths apart
        strokes, count = [], min(rng.randint(3, 6), int(1.4 * radius / (2.2 * PAGE_PEN)) + 1)
        for turn in (0.0, rng.uniform(math.pi / 3, 2 * math.pi / 3)):
            dx, dy = math.cos(phase + turn), math.sin(phase + turn)
            for offset in np.linspace(-radius * 0.7, radius * 0.7, count):
                start = (cx - radius * dx - offset * dy, cy - radius * dy + offset * dx)
                strokes.append(np.array([start, (cx + radius * dx - offset * dy, cy + radius * dy + offset * dx)]))
        return strokes
    if shape == "star":
        spikes = rng.choice((5, 7))
        angles = phase + 2 * math.pi * 2 * np.arange(spikes + 1) / spikes
        return [np.c_[cx + radius * np.cos(angles), cy + radius * np.sin(angles)]]
    if shape == "zigzag":
        teeth = rng.randint(3, 6)
        xs = np.linspace(cx - radius, cx + radius, 2 * teeth + 1)
        ys = cy + np.where(np.arange(2 * teeth + 1) % 2, -1, 1) * radius * rng.uniform(0.25, 0.5)
        return [np.c_[xs, ys]]
    if shape == "loops":  # a row of cursive e's: a prolate cycloid
        turns = rng.randint(3, 4)
        loop = 1.7 * radius / (2.2 * turns)
        t = np.linspace(0, 2 * math.pi * turns, 60 * turns)
        x = 0.35 * loop * t - loop * np.sin(t)
        return [np.c_[cx - x.max() / 2 + x, cy + loop * np.cos(t)]]
    raise ValueError(f"no scribble {shape!r}: expected one of {', '.join(SCRIBBLES)}")


def scribbled(shape: str, rng: random.Random) -> Image.Image:
    """A scribble sampled every 4-12 px as the pointer would, on the page as the PNG it sends."""
    step = rng.uniform(4, 12)
    return page([sample(stroke, step) for stroke in scribble(shape, rng)])


def noise(kind: str, rng: random.Random) -> Image.Image:
    """A small picture of nothing: random grey pixels, scattered dots, or blurred blotches on paper."""
    generator = np.random.default_rng(rng.getrandbits(32))
    if kind == "pixels":
        side = rng.randint(8, 64)
        return Image.fromarray(generator.integers(0, 256, (side, side), dtype=np.uint8), "L")
    side = rng.randint(28, 160)
    pixels = np.full((side, side), 250.0)
    ys, xs = np.mgrid[0:side, 0:side]
    if kind == "dots":
        for _ in range(rng.randint(10, 60)):
            y, x, r = generator.uniform(0, side), generator.uniform(0, side), rng.uniform(0.7, 2.5)
            pixels[(ys - y) ** 2 + (xs - x) ** 2 <= r * r] = rng.uniform(0, 90)
        return Image.fromarray(pixels.astype(np.uint8), "L")
    if kind == "blotches":
        for _ in range(rng.randint(2, 5)):
            y, x, r = generator.uniform(0, side), generator.uniform(0, side), rng.uniform(side / 14, side / 5)
            pixels -= rng.uniform(120, 230) * np.exp(-((ys - y) ** 2 + (xs - x) ** 2) / (2 * r * r))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
        return image.filter(ImageFilter.GaussianBlur(side / 40))
    raise ValueError(f"no noise {kind!r}: expected one of {', '.join(NOISES)}")


def render_not_digits(fonts: Mapping[str, Path], seed: int = 0, variants: int = 2) -> list[NotDigit]:
    """Every letter of ``LETTERS`` in every font and letter rendering, ``PER_SHAPE`` scribbles of every shape and
    noise images of every kind, ``variants`` seeded variants each."""
    images = []
    for variant in range(variants):
        for font, path in fonts.items():
            for rendering in LETTER_RENDERINGS:
                for letter in LETTERS:
                    key = seed_of(seed, "letters", font, rendering, letter, variant)
                    images.append(
                        NotDigit(draw(path, letter, rendering, key), letter, "letters", f"letters/{rendering}")
                    )
        for k in range(PER_SHAPE):
            for shape in SCRIBBLES:
                rng = random.Random(seed_of(seed, "scribbles", shape, k, variant))
                images.append(NotDigit(scribbled(shape, rng), shape, "scribbles", f"scribbles/{shape}"))
            for kind in NOISES:
                rng = random.Random(seed_of(seed, "noise", kind, k, variant))
                images.append(NotDigit(noise(kind, rng), kind, "noise", f"noise/{kind}"))
    return images


SOURCES = (
    *(f"letters/{r}" for r in LETTER_RENDERINGS),
    *(f"scribbles/{s}" for s in SCRIBBLES),
    *(f"noise/{n}" for n in NOISES),
)
"""Every way a not-digit is drawn, in the order the tables give them."""
