"""The handwriting suite's images: every digit of every hand, drawn the seventeen ways users' pictures of a digit
differ from MNIST (``RENDERINGS``), a few seeded variants each, the same images on every machine and run."""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mnist_lightning.evaluate.drawing import (
    DARK_INKS,
    INKS,
    PAPERS,
    Draw,
    Skew,
    as_image,
    grain,
    jpeg,
    lit,
    paint,
    pen,
    placed,
    scaled,
    skewed,
)
from mnist_lightning.evaluate.hands import HandStyle
from mnist_lightning.evaluate.strokes import PAGE_SIDE, StrokeHand, encoded, page, writing

VARIANTS = 2
"""Seeded variants per hand, digit and rendering: 23 hands (``--hands all``) x 10 digits x 17 renderings x 2 =
7,820 images."""


class Sample(NamedTuple):
    image: Image.Image
    label: int
    hand: str
    rendering: str


def clean(d: Draw) -> Image.Image:
    side = d.rng.randint(28, 160)
    mask = d.glyph(max_angle=0.0)
    pixels = d.on_paper(d.ink(side, (0.6, 0.85), mask), side, (255, 255, 255), (0, 0, 0))
    return as_image(pixels, d.rng.choice(("L", "RGB")))


def paper(d: Draw) -> Image.Image:
    side = d.rng.randint(64, 256)
    pixels = d.on_paper(d.ink(side, (0.5, 0.8)), side, d.rng.choice(PAPERS), d.rng.choice(INKS))
    pixels = grain(lit(pixels, d.rng, d.rng.uniform(0.55, 0.85)), d.rng.uniform(3, 10), d.seed)
    return as_image(pixels)


def white_on_black(d: Draw) -> Image.Image:
    side = d.rng.randint(28, 200)
    board = d.rng.choice(((0, 0, 0), (20, 20, 24), (30, 48, 40)))
    chalk = d.rng.choice(((255, 255, 255), (230, 230, 220), (250, 240, 150)))
    return as_image(d.on_paper(d.ink(side, (0.55, 0.85)), side, board, chalk), d.rng.choice(("L", "RGB")))


def marker(d: Draw) -> Image.Image:
    side = d.rng.randint(64, 256)
    mask = d.glyph(stroke=d.rng.randint(5, 11))
    return as_image(d.on_paper(d.ink(side, (0.55, 0.85), mask), side, (252, 252, 252), d.rng.choice(DARK_INKS)))


def fine_pen(d: Draw) -> Image.Image:
    side = d.rng.randint(80, 300)
    height = round(side * d.rng.uniform(0.5, 0.8))
    mask = pen(d.glyph(), d.rng.uniform(1.0, 2.5), height)
    ink = scaled(mask, height, side * 0.95)
    return as_image(d.on_paper(ink, side, (252, 252, 250), d.rng.choice(DARK_INKS)))


def small(d: Draw) -> Image.Image:
    side = d.rng.randint(16, 24)
    return as_image(d.on_paper(d.ink(side, (0.6, 0.85)), side, (255, 255, 255), (0, 0, 0)), "L")


def large(d: Draw) -> Image.Image:
    side = d.rng.randint(250, 400)
    return as_image(d.on_paper(d.ink(side, (0.5, 0.8)), side, (250, 250, 248), d.rng.choice(DARK_INKS)))


def rotated(d: Draw) -> Image.Image:
    side = d.rng.randint(40, 200)
    mask = d.glyph(min_angle=5.0, max_angle=15.0)
    return as_image(d.on_paper(d.ink(side, (0.6, 0.85), mask), side, (255, 255, 255), (0, 0, 0)))


def off_centre(d: Draw) -> Image.Image:
    side = d.rng.randint(128, 400)
    return as_image(d.on_paper(d.ink(side, (0.2, 0.4)), side, (255, 255, 255), d.rng.choice(DARK_INKS)))


def tight_crop(d: Draw) -> Image.Image:
    ink = scaled(d.glyph(), d.rng.randint(20, 200), 400)
    coverage = np.asarray(ink, dtype=np.float32) / 255
    rows, cols = np.nonzero(coverage > 0.75)
    coverage = coverage[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return as_image(paint(coverage, (255, 255, 255), (0, 0, 0)), d.rng.choice(("L", "RGB")))


def tiny_upscaled(d: Draw) -> Image.Image:
    side = d.rng.randint(8, 16)
    tiny = as_image(d.on_paper(d.ink(side, (0.7, 0.9)), side, (255, 255, 255), (0, 0, 0)), "L")
    factor = d.rng.randint(4, 12)
    resample = d.rng.choice((Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC))
    return tiny.resize((tiny.width * factor, tiny.height * factor), resample)


def blurred(d: Draw) -> Image.Image:
    side = d.rng.randint(40, 200)
    ink = d.ink(side, (0.55, 0.85))
    image = as_image(d.on_paper(ink, side, (255, 255, 255), d.rng.choice(DARK_INKS)))
    return image.filter(ImageFilter.GaussianBlur(ink.height * d.rng.uniform(0.03, 0.07)))


def jpeg_compressed(d: Draw) -> Image.Image:
    side = d.rng.randint(40, 200)
    pixels = d.on_paper(d.ink(side, (0.55, 0.85)), side, d.rng.choice(PAPERS[:3]), d.rng.choice(DARK_INKS))
    return jpeg(as_image(pixels), d.rng.randint(5, 25))


def phone_photo(d: Draw) -> Image.Image:
    side = d.rng.randint(200, 400)
    ink = d.ink(side, (0.4, 0.75), d.glyph(max_angle=10.0))
    pixels = d.on_paper(ink, side, d.rng.choice(PAPERS), d.rng.choice(INKS[:4]))
    pixels = grain(lit(pixels, d.rng, d.rng.uniform(0.6, 0.9)), d.rng.uniform(3, 8), d.seed)
    image = as_image(pixels).filter(ImageFilter.GaussianBlur(ink.height * d.rng.uniform(0.005, 0.02)))
    return jpeg(image, d.rng.randint(50, 85))


def slanted(d: Draw) -> Image.Image:
    side = d.rng.randint(40, 200)
    lean = d.rng.uniform(0.25, 0.45) * d.rng.choice((-1, 1))
    mask = skewed(d.glyph(), Skew(lean, 1.0))
    return as_image(d.on_paper(d.ink(side, (0.6, 0.85), mask), side, (255, 255, 255), d.rng.choice(DARK_INKS)))


def low_res_scan(d: Draw) -> Image.Image:
    scan = as_image(d.on_paper(d.ink(8, (0.7, 0.9)), 8, (255, 255, 255), (0, 0, 0)), "L")
    scan = Image.eval(scan, lambda v: round(v / 17) * 17)  # 16 grey levels: 0, 17, ..., 255
    side = d.rng.randint(28, 112)
    resample = d.rng.choice((Image.Resampling.BILINEAR, Image.Resampling.BICUBIC))
    return scan.resize((max(1, round(side * scan.width / scan.height)), side), resample)


def canvas(d: Draw) -> Image.Image:
    if isinstance(d.hand, StrokeHand):
        return page(writing(d.hand, int(d.char), d.rng))
    ink = scaled(d.glyph(), PAGE_SIDE * d.rng.uniform(0.35, 0.8), PAGE_SIDE * 0.9)
    return encoded(as_image(paint(placed(ink, PAGE_SIDE, PAGE_SIDE, d.rng), (255, 255, 255), (0, 0, 0))))


RENDERINGS: dict[str, tuple[str, Callable[[Draw], Image.Image]]] = {
    "clean": ("black on white, 28-160 px, digit 60-85 % of the side, not tilted", clean),
    "paper": ("pen or pencil on tinted, unevenly lit paper (gradient to 55-85 %), grain, 64-256 px", paper),
    "white-on-black": ("light ink on black or a dark board (dark mode, chalk), 28-200 px", white_on_black),
    "marker": ("thick marker: strokes widened 5-11 px at 256 px font size, 64-256 px", marker),
    "fine-pen": ("the hand's centre line redrawn with a 1-2.5 px pen, 80-300 px", fine_pen),
    "small": ("drawn directly in 16-24 px", small),
    "large": ("250-400 px (scanner or phone resolution)", large),
    "rotated": ("rotated 5-15 degrees either way, 40-200 px", rotated),
    "off-centre": ("digit 20-40 % of a 128-400 px image, anywhere (wide margins)", off_centre),
    "tight-crop": ("cropped to the ink: strokes touch all four edges, 20-200 px", tight_crop),
    "tiny-upscaled": ("drawn in 8-16 px, then enlarged 4-12x (nearest, bilinear or bicubic)", tiny_upscaled),
    "blurred": ("out of focus: Gaussian blur of 3-7 % of the digit's height, 40-200 px", blurred),
    "jpeg": ("JPEG quality 5-25 on white or tinted paper, 40-200 px", jpeg_compressed),
    "phone-photo": (
        "tilted up to 10 degrees, tinted unevenly lit paper, grain, soft focus, JPEG 50-85, 200-400 px",
        phone_photo,
    ),
    "slanted": ("italic: sheared a further 0.25-0.45 of the height either way, 40-200 px", slanted),
    "low-res-scan": ("drawn in 8 px with 16 grey levels, enlarged to 28-112 px (bilinear or bicubic)", low_res_scan),
    "canvas": (
        "on the serving page's 280x280 canvas with its 18 px round pen (a font's glyph 35-80 % of it), as its PNG",
        canvas,
    ),
}
"""Every rendering writes the digit slanted and stretched (``SLANT``, ``WIDTH``) and tilts it by up to 3 degrees
unless it says otherwise (``clean`` is not tilted; ``canvas`` draws a stroke hand's writing as the page's pointer
does, varied by :func:`.strokes.writing` only)."""


def seed_of(*parts: object) -> int:
    """A seed that depends only on its parts (never on Python's hash salt, or on which other hands are drawn)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def draw(hand: HandStyle, char: int | str, rendering: str, key: int) -> Image.Image:
    """One writing of ``char`` (a digit; a font can write letters too) in ``hand``, drawn as ``rendering`` from the
    seed ``key``."""
    return RENDERINGS[rendering][1](Draw(hand, char, random.Random(key), key))


def render_benchmark(
    hands: Mapping[str, HandStyle], seed: int = 0, variants: int = VARIANTS, renderings: Iterable[str] = RENDERINGS
) -> list[Sample]:
    """Every digit of every hand, in every rendering, ``variants`` seeded variants each: the suite's images."""
    samples = []
    for hand, style in hands.items():
        for rendering in renderings:
            for digit in range(10):
                for variant in range(variants):
                    image = draw(style, digit, rendering, seed_of(seed, hand, rendering, digit, variant))
                    samples.append(Sample(image, digit, hand, rendering))
    return samples


def contact_sheet(
    samples: Sequence[NamedTuple], rows: Sequence[str] = tuple(RENDERINGS), per_rendering: int = 12, tile: int = 96
) -> Image.Image:
    """A few images of every rendering in ``rows`` (a sample's ``rendering``), each shown fitted into a tile (tiny
    ones enlarged with hard pixels), captioned with its ``label`` and size."""
    label_width = 120
    sheet = Image.new("RGB", (label_width + per_rendering * (tile + 4), len(rows) * (tile + 16)), (128,) * 3)
    canvas = ImageDraw.Draw(sheet)
    for row, rendering in enumerate(rows):
        chosen = [s for s in samples if s.rendering == rendering]
        step = max(1, len(chosen) // per_rendering)
        top = row * (tile + 16)
        canvas.text((4, top + tile // 2), rendering, fill=(255, 255, 255))
        for k, sample in enumerate(chosen[::step][:per_rendering]):
            image = sample.image.convert("RGB")
            scale = tile / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
            left = label_width + k * (tile + 4)
            sheet.paste(image.resize(size, resample), (left, top))
            canvas.text((left, top + tile + 2), f"{sample.label} {image.width}x{image.height}", fill=(255, 255, 255))
    return sheet
