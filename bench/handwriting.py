"""Benchmark: digits in real people's handwriting (Debian's handwriting fonts), rendered as users' images come.

    python bench/handwriting.py --checkpoint A.ckpt [--checkpoint NAME=B.ckpt ...] [--fonts tuning|held-out|all]
                                [--markdown] [--save-samples DIR]

Nothing here comes from MNIST: every digit 0-9 of every font is drawn with PIL the ways a user's picture of a digit
differs from MNIST (see ``RENDERINGS``), a few seeded variants each, and fed to ``predict_images``, the public API,
exactly as a user's PIL images would be. An image the preprocessing refuses (``ImageError``: "blank") counts as a
failure, and is also counted on its own. Choose settings on the TUNING fonts only; the HELD-OUT fonts are the
honest figure (see ``TUNING`` and ``HELD_OUT``).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import zlib
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torchmetrics.functional.classification import binary_calibration_error

from mnist_lightning import load_model, predict_images
from mnist_lightning.errors import CheckpointError
from mnist_lightning.inference import UNSURE_BELOW
from mnist_lightning.preprocess import ImageError

FONT_ROOT = Path("/usr/share/fonts")
FONTS: dict[str, tuple[str, ...]] = {
    "BecauseWeBuild": ("opentype/bwht/BecauseWeBuild-Regular.otf",),
    "BecauseWeConnect": ("opentype/bwht/BecauseWeConnect-Regular.otf",),
    "BecauseWeCreate": ("opentype/bwht/BecauseWeCreate-Regular.otf",),
    "BecauseWeLearn": ("opentype/bwht/BecauseWeLearn-Regular.otf",),
    "BecauseWeMentor": ("opentype/bwht/BecauseWeMentor-Regular.otf",),
    "BecauseWeOrganize": ("opentype/bwht/BecauseWeOrganize-Regular.otf",),
    "Breip": ("truetype/breip/Breip.ttf", "truetype/breip/breipfont.ttf"),
    "HumorSans": ("truetype/humor-sans/Humor-Sans.ttf",),
    "LeckerliOne": ("truetype/leckerli-one/LeckerliOne-Regular.ttf",),
    "Rufscript": ("truetype/rufscript/Rufscript010.ttf",),
}
"""One hand each, under ``FONT_ROOT``: fonts-bwht (six hands), fonts-breip, fonts-humor-sans, fonts-leckerli-one,
fonts-rufscript. Breip.ttf and breipfont.ttf are two releases of one hand (their digits are pixel-identical), so
Breip counts once: the first file found is used."""
PACKAGES = "fonts-bwht fonts-breip fonts-humor-sans fonts-leckerli-one fonts-rufscript"

TUNING = ("BecauseWeBuild", "BecauseWeConnect", "BecauseWeCreate", "HumorSans", "LeckerliOne")
"""Fonts to choose settings on (preprocessing constants, augmentation, thresholds): thin and thick pens, a brush
script and a bumpy comic hand, so that tuning sees variety."""
HELD_OUT = ("BecauseWeLearn", "BecauseWeMentor", "BecauseWeOrganize", "Breip", "Rufscript")
"""Fonts that are only ever reported, never tuned on: a figure measured on fonts that shaped the settings would
flatter them. Half of the ten hands, three of the six bwht hands and two other families (Breip's fine pen with
open loops is the least MNIST-like hand of all)."""
FONT_SETS = {"tuning": TUNING, "held-out": HELD_OUT, "all": TUNING + HELD_OUT}

GLYPH_PX = 256
"""Font size glyphs are drawn at before they are rotated, thinned and scaled down to the image's size."""
SLANT = 0.2
"""Every writing of a digit is slanted by up to this share of its height either way (about 11 degrees)."""
WIDTH = (0.85, 1.15)
"""... and stretched sideways by this much: a font has one shape per digit, a person does not."""
VARIANTS = 3
"""Seeded variants per font, digit and rendering: 10 fonts x 10 digits x 14 renderings x 3 = 4,200 images."""
ECE_BINS = 15


class Sample(NamedTuple):
    image: Image.Image
    label: int
    font: str
    rendering: str


class FontsMissingError(RuntimeError):
    """Debian's handwriting fonts are not installed."""


def font_paths(names: Iterable[str] = FONT_SETS["all"]) -> dict[str, Path]:
    """The installed file of each named hand; raises :class:`FontsMissingError` naming the packages to install."""
    found, missing = {}, []
    for name in names:
        paths = [FONT_ROOT / relative for relative in FONTS[name] if (FONT_ROOT / relative).is_file()]
        if paths:
            found[name] = paths[0]
        else:
            missing.append(name)
    if missing:
        raise FontsMissingError(
            f"handwriting fonts not installed: {', '.join(missing)} (expected under {FONT_ROOT}); "
            f"run: apt-get install {PACKAGES}"
        )
    return found


# --- drawing the ink ---------------------------------------------------------------------------------------------


@cache
def _font(path: Path) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), GLYPH_PX)


class Hand(NamedTuple):
    """How one writing of a digit differs from the font's: people slant and stretch their digits."""

    slant: float = 0.0
    """Shear: the top of the digit leans right by this fraction of its height (negative: left)."""
    width: float = 1.0
    """Horizontal stretch."""


AS_DRAWN = Hand()


def _written(mask: Image.Image, hand: Hand) -> Image.Image:
    """The mask slanted and stretched by ``hand`` (an affine map, bicubic)."""
    if hand == AS_DRAWN:
        return mask
    height, shift = mask.height, max(0.0, -hand.slant * mask.height)
    width = round(hand.width * mask.width + abs(hand.slant) * height) + 1
    coefficients = (1 / hand.width, hand.slant / hand.width, -(shift + hand.slant * height) / hand.width, 0, 1, 0)
    return mask.transform((width, height), Image.Transform.AFFINE, coefficients, Image.Resampling.BICUBIC)


def _glyph(path: Path, digit: int, stroke: int = 0, angle: float = 0.0, hand: Hand = AS_DRAWN) -> Image.Image:
    """The digit's ink as a large ``L`` mask (255 = ink), widened by ``stroke`` px, written by ``hand``, rotated,
    cropped to the ink."""
    font = _font(path)
    left, top, right, bottom = font.getbbox(str(digit), stroke_width=stroke)
    pad = 8
    mask = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(mask).text(
        (pad - left, pad - top), str(digit), font=font, fill=255, stroke_width=stroke, stroke_fill=255
    )
    mask = _written(mask, hand)
    if angle:
        mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    return mask.crop(mask.getbbox())


def _thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: a boolean image's strokes reduced to one-pixel-wide centre lines (a pen's path)."""
    image = np.pad(mask.astype(np.uint8), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = image
            p2, p3, p4, p5 = p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:]
            p6, p7, p8, p9 = p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            neighbours = sum(ring[:8])
            transitions = sum((ring[k] == 0) & (ring[k + 1] == 1) for k in range(8))
            pair, one, other = (p4 * p6, p2, p8) if step == 0 else (p2 * p8, p4, p6)
            side = (pair * one == 0) & (pair * other == 0)
            remove = (p[1:-1, 1:-1] == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & side
            if remove.any():
                image[1:-1, 1:-1][remove] = 0
                changed = True
    return image[1:-1, 1:-1].astype(bool)


def _pen(glyph: Image.Image, pen_px: float, height: int) -> Image.Image:
    """The glyph redrawn along its centre line with a pen ``pen_px`` wide once scaled to ``height`` px."""
    line = _thin(np.asarray(glyph) > 127)
    width = max(1, round(pen_px * glyph.height / height))
    drawn = Image.fromarray(line.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(width | 1))
    return drawn.filter(ImageFilter.GaussianBlur(width / 4))


def _scaled(glyph: Image.Image, height: float, max_width: float) -> Image.Image:
    """The glyph scaled (anti-aliased) to ``height`` px tall, narrower if it would exceed ``max_width``."""
    scale = min(height / glyph.height, max_width / glyph.width)
    size = (max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale)))
    return glyph.resize(size, Image.Resampling.LANCZOS)


def _placed(ink: Image.Image, width: int, height: int, rng: random.Random) -> np.ndarray:
    """The ink's coverage in [0, 1] on a canvas at least ``width`` x ``height``, at a random spot that leaves a
    margin (3 % of the side, at least 1 px) on every side: a digit cropped to its ink is ``tight-crop``'s case."""
    margin = max(1, round(0.03 * max(width, height)))
    width, height = max(width, ink.width + 2 * margin), max(height, ink.height + 2 * margin)
    canvas = Image.new("L", (width, height), 0)
    left = rng.randint(margin, width - ink.width - margin)
    canvas.paste(ink, (left, rng.randint(margin, height - ink.height - margin)))
    return np.asarray(canvas, dtype=np.float32) / 255


# --- paper, light and camera -------------------------------------------------------------------------------------


def _paint(coverage: np.ndarray, paper: Sequence[float] | np.ndarray, ink: Sequence[float]) -> np.ndarray:
    """RGB pixels in [0, 255]: ink laid over paper (a colour, or an ``(H, W, 3)`` array) by its coverage."""
    alpha = coverage[..., None]
    return np.asarray(paper, dtype=np.float32) * (1 - alpha) + np.asarray(ink, dtype=np.float32) * alpha


def _lit(pixels: np.ndarray, rng: random.Random, darkest: float) -> np.ndarray:
    """Light falling off across the page in a random direction, down to ``darkest`` of full brightness."""
    height, width = pixels.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = np.cos(angle) * xs / max(width - 1, 1) + np.sin(angle) * ys / max(height - 1, 1)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    return pixels * (1 - (1 - darkest) * ramp)[..., None]


def _grain(pixels: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return pixels + np.random.default_rng(seed).normal(0, sigma, pixels.shape).astype(np.float32)


def _image(pixels: np.ndarray, mode: str = "RGB") -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB").convert(mode)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        decoded.load()
        return decoded.copy()


PAPERS = ((250, 250, 250), (245, 236, 205), (226, 236, 246), (222, 222, 216), (246, 226, 230))
"""White, cream, blue-grey, recycled grey and pink paper."""
INKS = ((15, 15, 20), (25, 45, 140), (95, 95, 100), (130, 130, 135), (150, 25, 30))
"""Black, blue ballpoint, soft and hard pencil, red pen."""
DARK_INKS = INKS[:3]


# --- the renderings -----------------------------------------------------------------------------------------------


class Draw(NamedTuple):
    """What one rendering needs: the font, the digit, a seeded generator and a seed for numpy noise."""

    path: Path
    digit: int
    rng: random.Random
    seed: int

    def glyph(self, stroke: int = 0, max_angle: float = 3.0, min_angle: float = 0.0) -> Image.Image:
        """The digit as one writer wrote it: slanted up to ``SLANT`` either way, ``WIDTH`` wide, then tilted."""
        hand = Hand(self.rng.uniform(-SLANT, SLANT), self.rng.uniform(*WIDTH))
        angle = self.rng.uniform(min_angle, max_angle) * self.rng.choice((-1, 1))
        return _glyph(self.path, self.digit, stroke, angle, hand)

    def on_paper(self, ink: Image.Image, side: int, paper: Sequence[float], color: Sequence[float]) -> np.ndarray:
        """The scaled ink somewhere on a roughly square page ``side`` px tall, as RGB pixels."""
        width = round(side * self.rng.uniform(0.8, 1.25))
        return _paint(_placed(ink, width, side, self.rng), paper, color)

    def ink(self, side: int, fill: tuple[float, float], glyph: Image.Image | None = None) -> Image.Image:
        """The glyph scaled so that it fills ``fill`` (a range) of a ``side`` px image."""
        height = side * self.rng.uniform(*fill)
        return _scaled(glyph if glyph is not None else self.glyph(), height, side * 0.95)


def clean(d: Draw) -> Image.Image:
    side = d.rng.randint(28, 160)
    glyph = d.glyph(max_angle=0.0)
    pixels = d.on_paper(d.ink(side, (0.6, 0.85), glyph), side, (255, 255, 255), (0, 0, 0))
    return _image(pixels, d.rng.choice(("L", "RGB")))


def paper(d: Draw) -> Image.Image:
    side = d.rng.randint(64, 256)
    pixels = d.on_paper(d.ink(side, (0.5, 0.8)), side, d.rng.choice(PAPERS), d.rng.choice(INKS))
    pixels = _grain(_lit(pixels, d.rng, d.rng.uniform(0.55, 0.85)), d.rng.uniform(3, 10), d.seed)
    return _image(pixels)


def white_on_black(d: Draw) -> Image.Image:
    side = d.rng.randint(28, 200)
    board = d.rng.choice(((0, 0, 0), (20, 20, 24), (30, 48, 40)))
    chalk = d.rng.choice(((255, 255, 255), (230, 230, 220), (250, 240, 150)))
    return _image(d.on_paper(d.ink(side, (0.55, 0.85)), side, board, chalk), d.rng.choice(("L", "RGB")))


def marker(d: Draw) -> Image.Image:
    side = d.rng.randint(64, 256)
    glyph = d.glyph(stroke=d.rng.randint(5, 11))
    return _image(d.on_paper(d.ink(side, (0.55, 0.85), glyph), side, (252, 252, 252), d.rng.choice(DARK_INKS)))


def fine_pen(d: Draw) -> Image.Image:
    side = d.rng.randint(80, 300)
    height = round(side * d.rng.uniform(0.5, 0.8))
    glyph = _pen(d.glyph(), d.rng.uniform(1.0, 2.5), height)
    ink = _scaled(glyph, height, side * 0.95)
    return _image(d.on_paper(ink, side, (252, 252, 250), d.rng.choice(DARK_INKS)))


def small(d: Draw) -> Image.Image:
    side = d.rng.randint(16, 24)
    return _image(d.on_paper(d.ink(side, (0.6, 0.85)), side, (255, 255, 255), (0, 0, 0)), "L")


def large(d: Draw) -> Image.Image:
    side = d.rng.randint(250, 400)
    return _image(d.on_paper(d.ink(side, (0.5, 0.8)), side, (250, 250, 248), d.rng.choice(DARK_INKS)))


def rotated(d: Draw) -> Image.Image:
    side = d.rng.randint(40, 200)
    glyph = d.glyph(min_angle=5.0, max_angle=15.0)
    return _image(d.on_paper(d.ink(side, (0.6, 0.85), glyph), side, (255, 255, 255), (0, 0, 0)))


def off_centre(d: Draw) -> Image.Image:
    side = d.rng.randint(128, 400)
    return _image(d.on_paper(d.ink(side, (0.2, 0.4)), side, (255, 255, 255), d.rng.choice(DARK_INKS)))


def tight_crop(d: Draw) -> Image.Image:
    ink = _scaled(d.glyph(), d.rng.randint(20, 200), 400)
    coverage = np.asarray(ink, dtype=np.float32) / 255
    rows, cols = np.nonzero(coverage > 0.75)
    coverage = coverage[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return _image(_paint(coverage, (255, 255, 255), (0, 0, 0)), d.rng.choice(("L", "RGB")))


def tiny_upscaled(d: Draw) -> Image.Image:
    side = d.rng.randint(8, 16)
    tiny = _image(d.on_paper(d.ink(side, (0.7, 0.9)), side, (255, 255, 255), (0, 0, 0)), "L")
    factor = d.rng.randint(4, 12)
    resample = d.rng.choice((Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC))
    return tiny.resize((tiny.width * factor, tiny.height * factor), resample)


def blurred(d: Draw) -> Image.Image:
    side = d.rng.randint(40, 200)
    ink = d.ink(side, (0.55, 0.85))
    image = _image(d.on_paper(ink, side, (255, 255, 255), d.rng.choice(DARK_INKS)))
    return image.filter(ImageFilter.GaussianBlur(ink.height * d.rng.uniform(0.03, 0.07)))


def jpeg(d: Draw) -> Image.Image:
    side = d.rng.randint(40, 200)
    pixels = d.on_paper(d.ink(side, (0.55, 0.85)), side, d.rng.choice(PAPERS[:3]), d.rng.choice(DARK_INKS))
    return _jpeg(_image(pixels), d.rng.randint(5, 25))


def phone_photo(d: Draw) -> Image.Image:
    side = d.rng.randint(200, 400)
    ink = d.ink(side, (0.4, 0.75), d.glyph(max_angle=10.0))
    pixels = d.on_paper(ink, side, d.rng.choice(PAPERS), d.rng.choice(INKS[:4]))
    pixels = _grain(_lit(pixels, d.rng, d.rng.uniform(0.6, 0.9)), d.rng.uniform(3, 8), d.seed)
    image = _image(pixels).filter(ImageFilter.GaussianBlur(ink.height * d.rng.uniform(0.005, 0.02)))
    return _jpeg(image, d.rng.randint(50, 85))


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
    "jpeg": ("JPEG quality 5-25 on white or tinted paper, 40-200 px", jpeg),
    "phone-photo": (
        "tilted up to 10 degrees, tinted unevenly lit paper, grain, soft focus, JPEG 50-85, 200-400 px",
        phone_photo,
    ),
}
"""Every rendering writes the digit slanted and stretched (``SLANT``, ``WIDTH``) and tilts it by up to 3 degrees
unless it says otherwise (``clean`` is not tilted)."""


def _seed(*parts: object) -> int:
    """A seed that depends only on its parts (never on Python's hash salt, or on which other fonts are drawn)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def render_benchmark(fonts: dict[str, Path], seed: int = 0, variants: int = VARIANTS) -> list[Sample]:
    """Every digit of every font, in every rendering, ``variants`` seeded variants each: the benchmark's images."""
    samples = []
    for font, path in fonts.items():
        for rendering, (_, draw) in RENDERINGS.items():
            for digit in range(10):
                for variant in range(variants):
                    key = _seed(seed, font, rendering, digit, variant)
                    image = draw(Draw(path, digit, random.Random(key), key))
                    samples.append(Sample(image, digit, font, rendering))
    return samples


# --- measuring -----------------------------------------------------------------------------------------------------


class Outcome(NamedTuple):
    """One image's result: the predicted label and its probability, or None when the image was refused."""

    label: int | None
    confidence: float | None


def predict(model: torch.nn.Module, images: Sequence[Image.Image], batch: int = 64) -> list[Outcome]:
    """Predictions through ``predict_images`` a batch at a time; a batch with a refused image goes one by one."""
    outcomes: list[Outcome] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        try:
            results = [predict_images(model, chunk)]
        except ImageError:
            results = []
            for image in chunk:
                try:
                    results.append(predict_images(model, [image]))
                except ImageError:
                    results.append(None)
        for result in results:
            if result is None:
                outcomes.append(Outcome(None, None))
                continue
            top = result.probabilities.max(dim=1).values
            outcomes += [Outcome(int(k), float(p)) for k, p in zip(result.labels, top, strict=True)]
    return outcomes


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by how many predictions fall in each:
    torchmetrics' calibration error of the top probability against whether the answer was right."""
    if not confidences:
        return float("nan")
    confidence = torch.tensor(confidences, dtype=torch.float64)
    right = torch.tensor(correct, dtype=torch.long)
    return float(binary_calibration_error(confidence, right, n_bins=bins, norm="l1"))


class Score(NamedTuple):
    correct: int
    count: int
    refused: int
    ece: float
    unsure: int
    """Answers under ``UNSURE_BELOW``: the predict command and the page say "not sure: A or B" for them."""
    wrong_while_sure: int
    """Wrong answers at or over ``UNSURE_BELOW``: the confident mistakes a user is shown."""

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else float("nan")


def score(samples: Sequence[Sample], outcomes: Sequence[Outcome], keep: Callable[[Sample], bool]) -> Score:
    """Accuracy (refused images count as wrong), refusals and ECE (over the images that got a prediction)."""
    chosen = [(s, o) for s, o in zip(samples, outcomes, strict=True) if keep(s)]
    answered = [(s, o) for s, o in chosen if o.label is not None]
    correct = [o.label == s.label for s, o in answered]
    ece = expected_calibration_error([o.confidence for _, o in answered], correct)
    unsure = sum(o.confidence < UNSURE_BELOW for _, o in answered)
    wrong_while_sure = sum(
        o.confidence >= UNSURE_BELOW and not right for (_, o), right in zip(answered, correct, strict=True)
    )
    return Score(sum(correct), len(chosen), len(chosen) - len(answered), ece, unsure, wrong_while_sure)


# --- reporting -----------------------------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    """Rows as a Markdown table, or as aligned plain text for a terminal."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows])


def percent(value: float) -> str:
    return f"{value:.2%}"


def cell(score: Score) -> str:
    """The accuracy, and how many images were refused as blank when some were."""
    return percent(score.accuracy) + (f" ({score.refused} refused)" if score.refused else "")


def summary(samples: Sequence[Sample], outcomes: dict[str, list[Outcome]], fonts: Sequence[str], markdown: bool) -> str:
    """Overall, per rendering (and the worst), refusals and ECE for each model, on ``fonts``."""
    names = list(outcomes)
    in_set = set(fonts)
    rows = []

    def per_model(keep: Callable[[Sample], bool]) -> list[Score]:
        return [score(samples, outcomes[m], lambda s: s.font in in_set and keep(s)) for m in names]

    overall = per_model(lambda s: True)
    rows.append(["**overall**" if markdown else "overall", *(percent(s.accuracy) for s in overall)])
    by_rendering = {r: per_model(lambda s, r=r: s.rendering == r) for r in RENDERINGS}
    rows += [[r, *(cell(s) for s in scores)] for r, scores in by_rendering.items()]
    worst = []
    for k in range(len(names)):
        rendering = min(RENDERINGS, key=lambda r: by_rendering[r][k].accuracy)
        worst.append(f"{percent(by_rendering[rendering][k].accuracy)} ({rendering})")
    rows.append(["worst rendering", *worst])
    rows.append(["refused as blank", *(f"{s.refused} of {s.count}" for s in overall)])
    rows.append([f"ECE ({ECE_BINS} bins)", *(percent(s.ece) for s in overall)])
    rows.append([f"not sure (under {UNSURE_BELOW:.0%})", *(percent(s.unsure / s.count) for s in overall)])
    rows.append(["wrong while sure", *(percent(s.wrong_while_sure / s.count) for s in overall)])
    return table(["rendering", *names], rows, markdown)


def per_font(
    samples: Sequence[Sample], outcomes: dict[str, list[Outcome]], fonts: Sequence[str], markdown: bool
) -> str:
    names = list(outcomes)
    rows = []
    for font in fonts:
        scores = [score(samples, outcomes[m], lambda s, f=font: s.font == f) for m in names]
        group = "held-out" if font in HELD_OUT else "tuning"
        rows.append([font, group, *(cell(s) for s in scores)])
    return table(["font", "set", *names], rows, markdown)


def report(samples: Sequence[Sample], outcomes: dict[str, list[Outcome]], selection: str, markdown: bool) -> str:
    """The benchmark's tables: a summary per font set (held-out first, the honest one), then per font."""
    fonts = [f for f in FONT_SETS[selection] if any(s.font == f for s in samples)]
    sets = ["held-out", "tuning", "all"] if selection == "all" else [selection]
    parts = []
    for name in sets:
        chosen = [f for f in FONT_SETS[name] if f in fonts]
        count = sum(s.font in chosen for s in samples)
        title = f"{name} fonts ({', '.join(chosen)}): {count:,} images"
        parts += [f"**{title}**" if markdown else title, "", summary(samples, outcomes, chosen, markdown), ""]
    parts += ["**per font**" if markdown else "per font", "", per_font(samples, outcomes, fonts, markdown)]
    return "\n".join(parts)


def contact_sheet(samples: Sequence[Sample], per_rendering: int = 12, tile: int = 96) -> Image.Image:
    """A few images of every rendering, each shown fitted into a tile (tiny ones enlarged with hard pixels)."""
    rows = list(RENDERINGS)
    label_width = 120
    sheet = Image.new("RGB", (label_width + per_rendering * (tile + 4), len(rows) * (tile + 16)), (128, 128, 128))
    draw = ImageDraw.Draw(sheet)
    for r, rendering in enumerate(rows):
        chosen = [s for s in samples if s.rendering == rendering]
        step = max(1, len(chosen) // per_rendering)
        top = r * (tile + 16)
        draw.text((4, top + tile // 2), rendering, fill=(255, 255, 255))
        for k, sample in enumerate(chosen[::step][:per_rendering]):
            image = sample.image.convert("RGB")
            scale = tile / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
            left = label_width + k * (tile + 4)
            sheet.paste(image.resize(size, resample), (left, top))
            caption = f"{sample.label} {image.width}x{image.height}"
            draw.text((left, top + tile + 2), caption, fill=(255, 255, 255))
    return sheet


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", default=[], help="PATH or NAME=PATH of a checkpoint; repeat")
    parser.add_argument("--fonts", choices=list(FONT_SETS), default="all", help="which fonts (default: all)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for bench/RESULTS.md)")
    parser.add_argument("--save-samples", metavar="DIR", help="write DIR/handwriting-samples.png, a contact sheet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", type=int, default=VARIANTS, help="seeded variants per font, digit, rendering")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.variants < 1:
        parser.error(f"--variants must be at least 1, got {args.variants}")
    if not args.checkpoint and not args.save_samples:
        parser.error("nothing to do: pass --checkpoint PATH (repeat for several models) or --save-samples DIR")
    try:
        fonts = font_paths(FONT_SETS[args.fonts])
    except FontsMissingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    models = {}
    for spec in args.checkpoint:  # loaded before anything is drawn: a wrong path fails at once
        name, _, path = spec.partition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        try:
            models[name or Path(path).stem] = load_model(path)
        except (CheckpointError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    samples = render_benchmark(fonts, args.seed, args.variants)
    if args.save_samples:
        folder = Path(args.save_samples)
        folder.mkdir(parents=True, exist_ok=True)
        contact_sheet(samples).save(folder / "handwriting-samples.png")
        print(f"wrote {folder / 'handwriting-samples.png'}", file=sys.stderr)
    outcomes = {name: predict(model, [s.image for s in samples]) for name, model in models.items()}
    for name, results in outcomes.items():
        refused = sum(o.label is None for o in results)
        print(f"{name}: {len(samples):,} images, {refused} refused", file=sys.stderr, flush=True)
    if outcomes:
        print(report(samples, outcomes, args.fonts, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
