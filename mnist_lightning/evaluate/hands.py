"""Every hand of the handwriting suite, fonts (:mod:`.fonts`) and pen strokes (:mod:`.stroke_hands`), and the sets
``--hands`` chooses: ``tuning``, ``held-out``, ``all`` (the two, never the sealed hands) and ``sealed``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mnist_lightning.evaluate.fonts import FONTS, HELD_OUT, TUNING, font_paths
from mnist_lightning.evaluate.stroke_hands import STROKE_HANDS, STROKE_HELD_OUT, STROKE_SEALED, STROKE_TUNING
from mnist_lightning.evaluate.strokes import StrokeHand

HandStyle = Path | StrokeHand
"""What draws a hand: a font file, or a stroke hand's style."""

HAND_SETS: dict[str, tuple[str, ...]] = {
    "tuning": TUNING + STROKE_TUNING,
    "held-out": HELD_OUT + STROKE_HELD_OUT,
    "all": TUNING + STROKE_TUNING + HELD_OUT + STROKE_HELD_OUT,
    "sealed": STROKE_SEALED,
}
"""The hands of each ``--hands`` choice. ``all`` leaves the sealed hands out: they are measured only when asked for
by name, once, at the end."""


def hand_set(name: str) -> str:
    """``"held-out"``, ``"sealed"`` or ``"tuning"``: the part of the split the hand belongs to."""
    if name in HELD_OUT or name in STROKE_HELD_OUT:
        return "held-out"
    return "sealed" if name in STROKE_SEALED else "tuning"


def hand_kind(name: str) -> str:
    """``"font"`` or ``"strokes"``."""
    return "font" if name in FONTS else "strokes"


def hand_styles(names: Iterable[str]) -> dict[str, HandStyle]:
    """What draws each named hand, in the order given; raises :class:`.fonts.FontsMissingError` for fonts that are
    not installed."""
    names = list(names)
    fonts = font_paths([name for name in names if name in FONTS])
    return {name: fonts[name] if name in FONTS else STROKE_HANDS[name] for name in names}
