"""Drawing one writing of a digit (or a letter) the ways a user's picture of it comes: the ink of a font's glyph or a
stroke hand's writing (slanted, stretched, tilted, thinned to a pen's path), then the paper, the light and the
camera.

Nothing here comes from MNIST; :mod:`.renderings` combines these steps into the suite's renderings.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnist_lightning.evaluate.strokes import StrokeHand, stroke_mask, writing

GLYPH_PX = 256
"""Font size glyphs are drawn at before they are rotated, thinned and scaled down to the image's size."""
SLANT = 0.2
"""Every writing of a digit is slanted by up to this share of its height either way (about 11 degrees)."""
WIDTH = (0.85, 1.15)
"""... and stretched sideways by this much: a font has one shape per digit, a person does not."""

PAPERS = ((250, 250, 250), (245, 236, 205), (226, 236, 246), (222, 222, 216), (246, 226, 230))
"""White, cream, blue-grey, recycled grey and pink paper."""
INKS = ((15, 15, 20), (25, 45, 140), (95, 95, 100), (130, 130, 135), (150, 25, 30))
"""Black, blue ballpoint, soft and hard pencil, red pen."""
DARK_INKS = INKS[:3]


# --- the ink -------------------------------------------------------------------------------------------------------


@cache
def _font(path: Path) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), GLYPH_PX)


class Skew(NamedTuple):
    """How one writing of a digit differs from the hand's: people slant and stretch their digits."""

    slant: float = 0.0
    """Shear: the top of the digit leans right by this fraction of its height (negative: left)."""
    width: float = 1.0
    """Horizontal stretch."""


AS_DRAWN = Skew()


def skewed(mask: Image.Image, skew: Skew) -> Image.Image:
    """The mask slanted and stretched by ``skew`` (an affine map, bicubic)."""
    if skew == AS_DRAWN:
        return mask
    height, shift = mask.height, max(0.0, -skew.slant * mask.height)
    width = round(skew.width * mask.width + abs(skew.slant) * height) + 1
    coefficients = (1 / skew.width, skew.slant / skew.width, -(shift + skew.slant * height) / skew.width, 0, 1, 0)
    return mask.transform((width, height), Image.Transform.AFFINE, coefficients, Image.Resampling.BICUBIC)


def finished(mask: Image.Image, skew: Skew = AS_DRAWN, angle: float = 0.0) -> Image.Image:
    """The mask skewed, rotated by ``angle`` degrees and cropped to the ink."""
    mask = skewed(mask, skew)
    if angle:
        mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    return mask.crop(mask.getbbox())


def font_mask(path: Path, char: str, stroke: int = 0) -> Image.Image:
    """The character's ink in the font as a large ``L`` mask (255 = ink), widened by ``stroke`` px."""
    font = _font(path)
    left, top, right, bottom = font.getbbox(char, stroke_width=stroke)
    pad = 8
    mask = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(mask).text((pad - left, pad - top), char, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    return mask


def glyph(path: Path, digit: int | str, stroke: int = 0, angle: float = 0.0, skew: Skew = AS_DRAWN) -> Image.Image:
    """The character's ink in the font as a large ``L`` mask (255 = ink), widened by ``stroke`` px, skewed,
    rotated, cropped to the ink."""
    return finished(font_mask(path, str(digit), stroke), skew, angle)


def thin(mask: np.ndarray) -> np.ndarray:
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


def pen(mask: Image.Image, pen_px: float, height: int) -> Image.Image:
    """The mask redrawn along its centre line with a pen ``pen_px`` wide once scaled to ``height`` px."""
    line = thin(np.asarray(mask) > 127)
    width = max(1, round(pen_px * mask.height / height))
    drawn = Image.fromarray(line.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(width | 1))
    return drawn.filter(ImageFilter.GaussianBlur(width / 4))


def scaled(mask: Image.Image, height: float, max_width: float) -> Image.Image:
    """The mask scaled (anti-aliased) to ``height`` px tall, narrower if it would exceed ``max_width``."""
    scale = min(height / mask.height, max_width / mask.width)
    size = (max(1, round(mask.width * scale)), max(1, round(mask.height * scale)))
    return mask.resize(size, Image.Resampling.LANCZOS)


def placed(ink: Image.Image, width: int, height: int, rng: random.Random) -> np.ndarray:
    """The ink's coverage in [0, 1] on a canvas at least ``width`` x ``height``, at a random spot that leaves a
    margin (3 % of the side, at least 1 px) on every side: a digit cropped to its ink is ``tight-crop``'s case."""
    margin = max(1, round(0.03 * max(width, height)))
    width, height = max(width, ink.width + 2 * margin), max(height, ink.height + 2 * margin)
    canvas = Image.new("L", (width, height), 0)
    left = rng.randint(margin, width - ink.width - margin)
    canvas.paste(ink, (left, rng.randint(margin, height - ink.height - margin)))
    return np.asarray(canvas, dtype=np.float32) / 255


# --- paper, light and camera -------------------------------------------------------------------------------------


def paint(coverage: np.ndarray, paper: Sequence[float] | np.ndarray, ink: Sequence[float]) -> np.ndarray:
    """RGB pixels in [0, 255]: ink laid over paper (a colour, or an ``(H, W, 3)`` array) by its coverage."""
    alpha = coverage[..., None]
    return np.asarray(paper, dtype=np.float32) * (1 - alpha) + np.asarray(ink, dtype=np.float32) * alpha


def lit(pixels: np.ndarray, rng: random.Random, darkest: float) -> np.ndarray:
    """Light falling off across the page in a random direction, down to ``darkest`` of full brightness."""
    height, width = pixels.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = np.cos(angle) * xs / max(width - 1, 1) + np.sin(angle) * ys / max(height - 1, 1)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    return pixels * (1 - (1 - darkest) * ramp)[..., None]


def grain(pixels: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Sensor noise: Gaussian, ``sigma`` grey levels, seeded."""
    return pixels + np.random.default_rng(seed).normal(0, sigma, pixels.shape).astype(np.float32)


def as_image(pixels: np.ndarray, mode: str = "RGB") -> Image.Image:
    """RGB pixels as a PIL image of ``mode`` (``L`` for grey), clipped to [0, 255] and rounded."""
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB").convert(mode)


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """The image after a JPEG round trip at ``quality``."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        decoded.load()
        return decoded.copy()


class Draw(NamedTuple):
    """What one rendering needs: the hand (a font file or a stroke hand), the character, a seeded generator and a
    seed for numpy noise."""

    hand: Path | StrokeHand
    char: int | str
    rng: random.Random
    seed: int

    def glyph(self, stroke: int = 0, max_angle: float = 3.0, min_angle: float = 0.0) -> Image.Image:
        """The character as one writer wrote it: slanted up to ``SLANT`` either way, ``WIDTH`` wide, then tilted;
        a stroke hand's writing is varied first (:func:`.strokes.writing`)."""
        skew = Skew(self.rng.uniform(-SLANT, SLANT), self.rng.uniform(*WIDTH))
        angle = self.rng.uniform(min_angle, max_angle) * self.rng.choice((-1, 1))
        if isinstance(self.hand, StrokeHand):
            mask = stroke_mask(writing(self.hand, int(self.char), self.rng), self.hand.pen, widen=stroke)
            return finished(mask, skew, angle)
        return glyph(self.hand, self.char, stroke, angle, skew)

    def on_paper(self, ink: Image.Image, side: int, paper: Sequence[float], color: Sequence[float]) -> np.ndarray:
        """The scaled ink somewhere on a roughly square page ``side`` px tall, as RGB pixels."""
        width = round(side * self.rng.uniform(0.8, 1.25))
        return paint(placed(ink, width, side, self.rng), paper, color)

    def ink(self, side: int, fill: tuple[float, float], mask: Image.Image | None = None) -> Image.Image:
        """The glyph (a fresh writing unless ``mask`` is given) scaled to fill ``fill`` (a range) of ``side`` px."""
        height = side * self.rng.uniform(*fill)
        return scaled(mask if mask is not None else self.glyph(), height, side * 0.95)
