"""The pen-stroke hands: fixed styles split once into tuning, held-out and sealed hands, every writing seeded, and
drawn as the serving page draws (its canvas, its pen, its PNG) or as a large mask every rendering can use."""

from __future__ import annotations

import random

import numpy as np
import pytest
from helpers import REPO
from PIL import Image

from mnist_lightning.evaluate import not_digits
from mnist_lightning.evaluate.fonts import FONTS, HELD_OUT, TUNING
from mnist_lightning.evaluate.hands import HAND_SETS, hand_kind, hand_set
from mnist_lightning.evaluate.not_digit_images import LETTER_RENDERINGS, LETTERS, NOISES, PER_SHAPE, SCRIBBLES
from mnist_lightning.evaluate.renderings import RENDERINGS, VARIANTS
from mnist_lightning.evaluate.stroke_hands import STROKE_HANDS, STROKE_HELD_OUT, STROKE_SEALED, STROKE_TUNING
from mnist_lightning.evaluate.strokes import (
    ALLOGRAPHS,
    MASK_PX,
    PAGE_PEN,
    PAGE_SIDE,
    StrokeHand,
    allographs,
    line,
    page,
    stroke_mask,
    writing,
)


def test_the_split_is_fixed_and_the_sealed_hands_are_never_in_all() -> None:
    """Moving a hand between the parts would report a figure on hands that shaped the settings."""
    assert STROKE_HELD_OUT == ("narrow-tall", "scrawl", "left-lean-small", "draftsman", "loopy")
    assert STROKE_SEALED == ("hurried-wide", "trembling", "stout")
    assert len(STROKE_TUNING) == 8
    parts = [set(STROKE_TUNING), set(STROKE_HELD_OUT), set(STROKE_SEALED)]
    assert sum(map(len, parts)) == len(set().union(*parts)) == len(STROKE_HANDS), "disjoint, and every hand in one"
    assert not set(STROKE_HANDS) & set(FONTS)
    assert HAND_SETS["all"] == (*TUNING, *STROKE_TUNING, *HELD_OUT, *STROKE_HELD_OUT)
    assert not set(STROKE_SEALED) & (set(HAND_SETS["all"]) | set(HAND_SETS["tuning"]) | set(HAND_SETS["held-out"]))
    assert HAND_SETS["sealed"] == STROKE_SEALED
    assert [hand_set(h) for h in ("scrawl", "stout", "backhand", "Breip")] == [
        "held-out",
        "sealed",
        "tuning",
        "held-out",
    ]
    assert [hand_kind(h) for h in ("scrawl", "Breip")] == ["strokes", "font"]


def test_every_allograph_is_some_tuning_hands_style() -> None:
    """The held-out hands are new combinations of shapes a tuning hand writes too, never a shape nobody tuned on."""
    for hand in STROKE_HANDS.values():
        assert all(shape in ALLOGRAPHS[digit] for digit, shape in enumerate(hand.shapes))
    tuned = {(digit, STROKE_HANDS[h].shapes[digit]) for h in STROKE_TUNING for digit in range(10)}
    assert tuned == {(digit, shape) for digit, shapes in ALLOGRAPHS.items() for shape in shapes}
    with pytest.raises(ValueError, match="name them d0 to d9"):
        allographs(one="flag")


def test_a_writing_is_seeded_and_stays_on_the_page() -> None:
    hand = STROKE_HANDS["loopy"]
    first = writing(hand, 8, random.Random(3))
    assert all(np.array_equal(a, b) for a, b in zip(first, writing(hand, 8, random.Random(3)), strict=True))
    assert not np.array_equal(first[0], writing(hand, 8, random.Random(4))[0])
    for name, style in STROKE_HANDS.items():
        for digit in range(10):
            points = np.vstack(writing(style, digit, random.Random(digit)))
            assert 0 <= points.min() <= points.max() <= PAGE_SIDE, (name, digit)


def test_a_fast_hand_is_sampled_at_fewer_points_and_a_shaky_one_trembles() -> None:
    style = allographs()
    slow, fast = StrokeHand(style, step=3), StrokeHand(style, step=30)
    assert len(writing(slow, 0, random.Random(0))[0]) > 5 * len(writing(fast, 0, random.Random(0))[0])
    steady = writing(StrokeHand(style, step=3), 1, random.Random(0))[0]
    shaky = writing(StrokeHand(style, step=3, shake=2.5), 1, random.Random(0))[0]
    assert np.abs(shaky - steady).max() > 2.0


def test_the_page_draws_with_its_own_pen_and_sends_a_png() -> None:
    image = page([line((40.0, 140.0), (240.0, 140.0))])
    assert image.format == "PNG"
    assert image.mode == "RGBA"
    assert image.size == (PAGE_SIDE, PAGE_SIDE)
    pixels = np.asarray(image.convert("L"))
    assert pixels[0, 0] == 255
    assert (pixels[:, 140] < 128).sum() == pytest.approx(PAGE_PEN, abs=1)
    assert (pixels[140] < 128).sum() == pytest.approx(200 + PAGE_PEN, abs=2), "round caps"


def test_a_stroke_mask_is_like_a_fonts_glyph() -> None:
    """An ``L`` mask of the ink, about ``MASK_PX`` tall plus the pen, cropped to the ink; ``widen`` thickens it."""
    strokes = writing(STROKE_HANDS["neat-school"], 7, random.Random(0))
    mask = stroke_mask(strokes, 14)
    assert mask.mode == "L"
    assert MASK_PX <= mask.height <= MASK_PX * 1.3
    assert mask.getbbox() == (0, 0, *mask.size)
    wide = stroke_mask(strokes, 14, widen=8)
    assert np.count_nonzero(np.asarray(wide)) > 1.3 * np.count_nonzero(np.asarray(mask))
    assert isinstance(mask, Image.Image)


def test_the_image_counts_are_the_documented_ones() -> None:
    """docs/evaluate.md: 16 stroke hands; 3,400 images for ``--hands held-out``, 7,820 for ``all``, 1,000 not-digits."""
    assert len(STROKE_HANDS) == 16
    per_hand = len(RENDERINGS) * 10 * VARIANTS
    assert (len(HAND_SETS["held-out"]) * per_hand, len(HAND_SETS["all"]) * per_hand) == (3400, 7820)
    letters = len(LETTERS) * len(HELD_OUT) * len(LETTER_RENDERINGS)
    assert (letters + PER_SHAPE * (len(SCRIBBLES) + len(NOISES))) * not_digits.VARIANTS == 1000
    docs = (REPO / "docs" / "evaluate.md").read_text()
    assert all(figure in docs for figure in ("3,400 images", "7,820", "1,000 images", "sixteen **stroke** hands"))
