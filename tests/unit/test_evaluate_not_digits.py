"""The not-digits suite draws letters no reader takes for a digit, scribbles and noise, the same every time, and
scores how often a model flags them, counting a refused picture as flagged."""

from __future__ import annotations

import random

import numpy as np
import pytest
from helpers import handwriting_fonts
from PIL import Image

from mnist_lightning.evaluate import not_digits
from mnist_lightning.evaluate.not_digit_images import (
    KINDS,
    LETTER_RENDERINGS,
    LETTERS,
    NOISES,
    PER_SHAPE,
    SCRIBBLES,
    SOURCES,
    NotDigit,
    noise,
    render_not_digits,
    scribble,
)
from mnist_lightning.evaluate.outcomes import REFUSED, Outcome
from mnist_lightning.evaluate.strokes import PAGE_SIDE


@pytest.fixture(scope="module")
def images() -> list[NotDigit]:
    return render_not_digits({"Breip": handwriting_fonts()["Breip"]}, seed=0, variants=1)


def test_no_letter_could_be_read_as_a_digit() -> None:
    assert LETTERS.isupper()
    assert len(set(LETTERS)) == len(LETTERS) >= 12
    assert not set(LETTERS) & set("BDGILOQSTZ")


def test_every_kind_is_drawn_as_documented(images: list[NotDigit]) -> None:
    assert len(images) == len(LETTERS) * len(LETTER_RENDERINGS) + PER_SHAPE * (len(SCRIBBLES) + len(NOISES))
    assert {i.rendering for i in images} == set(SOURCES)
    assert {i.kind for i in images} == set(KINDS)
    for image in images:
        luma = np.asarray(image.image.convert("L"), dtype=np.float32)
        assert np.ptp(luma) >= 80, (image.rendering, image.label)
        if image.kind == "scribbles" or image.rendering == "letters/canvas":
            assert image.image.size == (PAGE_SIDE, PAGE_SIDE)
            assert image.image.format == "PNG"


def test_the_images_are_the_same_for_a_seed(images: list[NotDigit]) -> None:
    again = render_not_digits({"Breip": handwriting_fonts()["Breip"]}, seed=0, variants=1)
    assert [i.image.tobytes() for i in images] == [i.image.tobytes() for i in again]
    assert scribble("star", random.Random(1))[0].tolist() != scribble("star", random.Random(2))[0].tolist()
    assert noise("dots", random.Random(5)).tobytes() == noise("dots", random.Random(5)).tobytes()
    with pytest.raises(ValueError, match="no scribble 'circle'"):
        scribble("circle", random.Random(0))


def fake_images() -> list[NotDigit]:
    """Four images of every source (no picture: scoring reads only the kinds)."""
    blank = Image.new("L", (1, 1))
    return [NotDigit(blank, "x", source.split("/")[0], source) for source in SOURCES for _ in range(4)]


def test_refused_images_are_flagged_and_the_worst_kind_is_flagged_least() -> None:
    images = fake_images()
    outcomes = []
    for image in images:
        if image.rendering == "noise/pixels":
            outcomes.append(REFUSED)
        elif image.kind == "scribbles":
            outcomes.append(Outcome(3, 0.99, False, False))  # taken for a digit
        else:
            outcomes.append(Outcome(3, 0.3, True, True))
    result = not_digits.scores(images, outcomes)
    assert result["kinds"]["noise"] == {"images": 12, "flagged": 1.0, "not_a_digit": pytest.approx(2 / 3), "refused": 4}
    assert result["kinds"]["scribbles"]["flagged"] == 0.0
    assert result["worst_kind"] == {"name": "scribbles", "flagged": 0.0, "not_a_digit": 0.0}
    assert result["flagged"] == pytest.approx(1 - len(SCRIBBLES) / len(SOURCES))
    table = not_digits.tables({"images": len(images), "models": {"m": result}}, markdown=True)
    assert "| images | count | m flagged | m not a digit |" in table
    assert "| noise/pixels | 4 | 100.00% (4 refused) | 0.00% |" in table
    assert "| worst kind |  | 0.00% (scribbles) |  |" in table
    assert all(f"| {source} | 4 | " in table for source in SOURCES)
