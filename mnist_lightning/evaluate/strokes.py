"""Digits written with a pen, the way the serving page's pointer draws them: strokes between pointer samples.

Every digit has a few allographs (shapes people are taught: a 1 with or without a flag, a crossed 7, an open or
closed 4), each a few strokes through control points in a unit box (x right, y down). A :class:`StrokeHand` is one
writer's fixed style; :func:`writing` is one seeded writing of a digit in that style, in the page's pixels, and
:func:`page` and :func:`stroke_mask` draw it as the page sends it or as a large ink mask like a font's glyph.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

PAGE_SIDE = 280
"""The serving page's canvas is 280 x 280 px (serve/static/index.html), white, ..."""
PAGE_PEN = 18
"""... and its pointer draws black round-capped lines 18 px wide (serve/static/app.js)."""
MASK_PX = 256
"""A stroke hand's mask is drawn this tall, as tall as a font's glyph (``drawing.GLYPH_PX``)."""

Stroke = np.ndarray
"""One pen-down path, ``(N, 2)`` points ``(x, y)``."""


# --- the shapes ----------------------------------------------------------------------------------------------------


def line(*points: tuple[float, float]) -> Stroke:
    """Straight segments through the points."""
    return np.array(points, dtype=np.float64)


def curve(*points: tuple[float, float], per: int = 12) -> Stroke:
    """A smooth path through the points (Catmull-Rom), ``per`` samples between two of them."""
    p = np.array(points, dtype=np.float64)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0, 1, per, endpoint=False)[:, None]
    pieces = []
    for k in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[k - 1], p[k], p[k + 1], p[k + 2]
        pieces.append(
            0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
        )
    return np.vstack([*pieces, p[-2][None]])


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> Stroke:
    """An elliptic arc from angle ``start`` to ``end`` in degrees (0 = right, 90 = down: y points down)."""
    angles = np.radians(np.linspace(start, end, max(8, round(abs(end - start) / 10))))
    return np.c_[cx + rx * np.cos(angles), cy + ry * np.sin(angles)]


def join(*pieces: Stroke) -> Stroke:
    """Pieces drawn one after another without lifting the pen."""
    return np.vstack(pieces)


_OVAL = arc(0.5, 0.5, 0.48, 0.49, -90, -460)
_HOOK_2 = ((0.05, 0.25), (0.5, 0.0), (0.95, 0.25), (0.7, 0.6))
_BOWL_5 = ((0.12, 0.45), (0.55, 0.36), (0.95, 0.66), (0.55, 1.0), (0.0, 0.9))
_LOOP_9 = arc(0.5, 0.3, 0.45, 0.3, 0, -360)

ALLOGRAPHS: dict[int, dict[str, tuple[Stroke, ...]]] = {
    0: {"oval": (_OVAL,), "slashed": (_OVAL, line((0.85, 0.1), (0.15, 0.9)))},
    1: {
        "plain": (line((0.5, 0.0), (0.5, 1.0)),),
        "flag": (line((0.15, 0.25), (0.55, 0.0), (0.55, 1.0)),),
        "flag-base": (line((0.15, 0.25), (0.55, 0.0), (0.55, 1.0)), line((0.15, 1.0), (0.95, 1.0))),
    },
    2: {
        "plain": (join(curve(*_HOOK_2, (0.05, 1.0)), line((0.05, 1.0), (1.0, 1.0))),),
        "looped": (curve(*_HOOK_2, (0.12, 0.93), (0.0, 0.82), (0.15, 0.76), (0.32, 0.95), (1.0, 0.97)),),
    },
    3: {
        "round": (
            join(
                curve((0.05, 0.15), (0.5, 0.0), (0.9, 0.2), (0.45, 0.47)),
                curve((0.45, 0.47), (0.95, 0.7), (0.55, 1.0), (0.0, 0.85)),
            ),
        ),
        "flat-top": (
            join(line((0.05, 0.0), (0.95, 0.0), (0.4, 0.4)), curve((0.4, 0.4), (0.95, 0.65), (0.6, 1.0), (0.0, 0.85))),
        ),
    },
    4: {
        "open": (line((0.12, 0.0), (0.05, 0.6), (1.0, 0.6)), line((0.75, 0.05), (0.75, 1.0))),
        "angled": (line((0.4, 0.0), (0.0, 0.65), (1.0, 0.65)), line((0.72, 0.25), (0.72, 1.0))),
        "closed": (line((0.7, 1.0), (0.7, 0.0), (0.0, 0.65), (1.0, 0.65)),),
    },
    5: {
        "plain": (join(line((0.2, 0.0), (0.12, 0.45)), curve(*_BOWL_5)), line((0.2, 0.0), (0.95, 0.0))),
        "one-stroke": (join(line((0.95, 0.0), (0.2, 0.0), (0.12, 0.45)), curve(*_BOWL_5)),),
    },
    6: {
        "curved": (
            curve(
                (0.85, 0.02), (0.35, 0.2), (0.05, 0.65), (0.35, 1.0), (0.85, 0.85), (0.8, 0.55), (0.4, 0.5), (0.08, 0.7)
            ),
        ),
        "straight": (
            join(line((0.8, 0.0), (0.1, 0.65)), curve((0.1, 0.65), (0.4, 1.0), (0.9, 0.8), (0.6, 0.5), (0.15, 0.65))),
        ),
    },
    7: {
        "plain": (line((0.0, 0.02), (1.0, 0.02), (0.3, 1.0)),),
        "crossed": (line((0.0, 0.02), (1.0, 0.02), (0.3, 1.0)), line((0.25, 0.5), (0.85, 0.5))),
        "curved": (join(line((0.0, 0.02), (1.0, 0.02)), curve((1.0, 0.02), (0.6, 0.45), (0.4, 1.0))),),
    },
    8: {
        "one-stroke": (
            curve(
                (0.85, 0.12),
                (0.5, 0.0),
                (0.12, 0.15),
                (0.2, 0.38),
                (0.8, 0.62),
                (0.85, 0.88),
                (0.5, 1.0),
                (0.12, 0.88),
                (0.2, 0.62),
                (0.8, 0.38),
                (0.88, 0.15),
                (0.75, 0.05),
            ),
        ),
        "two-loops": (arc(0.5, 0.24, 0.36, 0.24, -90, 270), arc(0.5, 0.73, 0.46, 0.27, -90, 270)),
    },
    9: {
        "straight": (join(_LOOP_9, line((0.95, 0.3), (0.9, 1.0))),),
        "curved": (join(_LOOP_9, curve((0.95, 0.3), (0.85, 0.75), (0.5, 1.0), (0.1, 0.9))),),
    },
}
"""Each digit's allographs by name, the first one each digit's default."""


def allographs(**chosen: str) -> tuple[str, ...]:
    """The allograph of every digit 0-9: the default unless chosen as ``d1="flag"``."""
    unknown = set(chosen) - {f"d{digit}" for digit in ALLOGRAPHS}
    if unknown:
        raise ValueError(f"no digits {sorted(unknown)}: name them d0 to d9")
    return tuple(chosen.get(f"d{digit}", next(iter(shapes))) for digit, shapes in ALLOGRAPHS.items())


class StrokeHand(NamedTuple):
    """One writer's fixed style: which shape each digit takes and how the pen moves."""

    shapes: tuple[str, ...]
    """The allograph of each digit 0-9 (:func:`allographs`)."""
    slant: float = 0.0
    """The top leans right by this share of the height (negative: left)."""
    aspect: float = 0.6
    """Width over height of the unit box."""
    pen: float = 16.0
    """The pen's width in page pixels at the hand's own ``size``, for every rendering but ``canvas``."""
    size: float = 0.65
    """The digit's height as a share of the page's side."""
    step: float = 5.0
    """Page pixels between pointer samples: a fast hand's few samples make polygons of its curves."""
    shake: float = 0.0
    """Standard deviation in page pixels of a slow hand's tremble at every sample."""


# --- one writing ---------------------------------------------------------------------------------------------------


def writing(hand: StrokeHand, digit: int, rng: random.Random) -> list[Stroke]:
    """One writing of ``digit`` in ``hand``'s style, in page pixels: the style varied a little (size, slant,
    width, tilt, a smooth wobble of the shape, where on the page), sampled as the pointer samples it."""
    slant = hand.slant + rng.uniform(-0.05, 0.05)
    aspect = hand.aspect * rng.uniform(0.94, 1.06)
    height = hand.size * PAGE_SIDE * rng.uniform(0.88, 1.12)
    angle = math.radians(rng.uniform(-5.0, 5.0))
    wobble_x, wobble_y = rng.uniform(-0.025, 0.025), rng.uniform(-0.025, 0.025)
    phase_x, phase_y = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)
    strokes = []
    for unit in ALLOGRAPHS[digit][hand.shapes[digit]]:
        x = (unit[:, 0] - 0.5) * aspect + wobble_x * np.sin(2 * np.pi * unit[:, 1] + phase_x)
        y = unit[:, 1] - 0.5 + wobble_y * np.sin(2 * np.pi * unit[:, 0] + phase_y)
        x = x - slant * y
        turned = np.c_[x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)]
        strokes.append(turned * height)
    points = np.vstack(strokes)
    low, high = points.min(axis=0), points.max(axis=0)
    room = np.maximum(PAGE_SIDE - (high - low) - 2 * PAGE_PEN, 0) / 2
    centre = PAGE_SIDE / 2 + np.array([rng.uniform(-1, 1), rng.uniform(-1, 1)]) * room * 0.8
    shift = centre - (low + high) / 2
    step = hand.step * rng.uniform(0.8, 1.2)
    shaking = np.random.default_rng(rng.getrandbits(32))
    sampled = [sample(stroke + shift, step) for stroke in strokes]
    return [s + shaking.normal(0, hand.shake, s.shape) if hand.shake else s for s in sampled]


def sample(stroke: Stroke, step: float) -> Stroke:
    """The points a pointer reports along the path: evenly ``step`` apart (at least its two ends)."""
    lengths = np.r_[0, np.cumsum(np.hypot(*np.diff(stroke, axis=0).T))]
    count = max(2, math.ceil(lengths[-1] / step) + 1)
    at = np.linspace(0, lengths[-1], count)
    return np.c_[np.interp(at, lengths, stroke[:, 0]), np.interp(at, lengths, stroke[:, 1])]


# --- drawing it ----------------------------------------------------------------------------------------------------


def ink(image: Image.Image, strokes: Sequence[Stroke], pen: float, fill: int | tuple[int, ...]) -> Image.Image:
    """Every stroke drawn onto ``image`` as the page draws it: a line of width ``pen`` between consecutive samples,
    each segment's ends rounded."""
    draw, radius = ImageDraw.Draw(image), pen / 2
    for stroke in strokes:
        points = [(float(x), float(y)) for x, y in stroke]
        if len(points) > 1:
            draw.line(points, fill=fill, width=max(1, round(pen)))
        for x, y in points:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)
    return image


def encoded(image: Image.Image) -> Image.Image:
    """The image after the page's ``toBlob("image/png")`` and the server's decoding: an RGBA PNG read back."""
    buffer = io.BytesIO()
    image.convert("RGBA").save(buffer, format="PNG")
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded


def page(strokes: Sequence[Stroke]) -> Image.Image:
    """The writing on the page's canvas, with the page's pen, as the PNG the page sends."""
    return encoded(ink(Image.new("RGB", (PAGE_SIDE, PAGE_SIDE), (255, 255, 255)), strokes, PAGE_PEN, (0, 0, 0)))


def stroke_mask(strokes: Sequence[Stroke], pen: float, widen: float = 0.0) -> Image.Image:
    """The writing's ink as a large ``L`` mask (255 = ink) about ``MASK_PX`` tall, cropped to the ink: the pen
    scaled with the writing, then ``widen`` px added on each side (a marker)."""
    points = np.vstack(strokes)
    low, high = points.min(axis=0), points.max(axis=0)
    scale = MASK_PX / max(float(high[1] - low[1]), 1.0)
    width = pen * scale + 2 * widen
    pad = width / 2 + 2
    size = (math.ceil((high[0] - low[0]) * scale + 2 * pad), math.ceil((high[1] - low[1]) * scale + 2 * pad))
    mask = ink(Image.new("L", size, 0), [(s - low) * scale + pad for s in strokes], width, 255)
    return mask.crop(mask.getbbox())
