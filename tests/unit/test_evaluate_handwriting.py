"""The handwriting suite draws what it says it draws, the same way every time, keeps its held-out hands apart,
and its tables show every rendering, every hand and the worst of each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import handwriting_fonts
from PIL import Image

from mnist_lightning.evaluate import fonts, handwriting
from mnist_lightning.evaluate.drawing import thin
from mnist_lightning.evaluate.hands import HAND_SETS, hand_set, hand_styles
from mnist_lightning.evaluate.outcomes import REFUSED, Outcome
from mnist_lightning.evaluate.renderings import RENDERINGS, Sample, render_benchmark

PACKAGE_FOLDERS = (
    "opentype/bwht",
    "truetype/breip",
    "truetype/humor-sans",
    "truetype/leckerli-one",
    "truetype/rufscript",
)
"""Where Debian's handwriting font packages put their files, under ``fonts.FONT_ROOT``."""


@pytest.fixture(scope="module")
def installed() -> dict[str, Path]:
    return handwriting_fonts()


DRAWN = ("Breip", "BecauseWeLearn", "scrawl")


@pytest.fixture(scope="module")
def samples(installed: dict[str, Path]) -> list[Sample]:
    """One variant of every digit and rendering of three hands: a thin pen, a thick one, a fast stroke hand."""
    return render_benchmark(hand_styles(DRAWN), seed=0, variants=1)


def luma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def test_the_held_out_split_is_the_one_the_figures_were_measured_on() -> None:
    """Moving a hand between the halves would report a figure on fonts that shaped the settings."""
    assert fonts.HELD_OUT == ("BecauseWeLearn", "BecauseWeMentor", "BecauseWeOrganize", "Breip", "Rufscript")
    assert not set(fonts.TUNING) & set(fonts.HELD_OUT)
    assert set(fonts.TUNING) | set(fonts.HELD_OUT) == set(fonts.FONTS)
    assert [hand_set(f) for f in ("Breip", "HumorSans")] == ["held-out", "tuning"]


def test_every_installed_font_file_belongs_to_a_hand(installed: dict[str, Path]) -> None:
    found = {
        path.relative_to(fonts.FONT_ROOT).as_posix()
        for folder in PACKAGE_FOLDERS
        for path in (fonts.FONT_ROOT / folder).iterdir()
        if path.suffix in (".ttf", ".otf")
    }
    known = {relative for files in fonts.FONTS.values() for relative in files}
    assert found <= known, f"font files no hand names: {sorted(found - known)}"
    assert len(found) >= 11


def test_missing_fonts_name_the_packages_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fonts, "FONT_ROOT", tmp_path)
    with pytest.raises(fonts.FontsMissingError, match=r"^handwriting fonts not installed: Breip \(") as caught:
        fonts.font_paths(["Breip"])
    assert "apt-get install fonts-bwht" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("hand", ["Breip", "scrawl"])
def test_the_renderer_is_deterministic_for_a_seed(hand: str, samples: list[Sample]) -> None:
    """The same seed draws the same images, whichever other hands are drawn with them; another seed draws others."""
    again = render_benchmark(hand_styles([hand]), seed=0, variants=1)
    first = [s for s in samples if s.hand == hand]
    assert [(s.label, s.rendering) for s in first] == [(s.label, s.rendering) for s in again]
    assert [s.image.tobytes() for s in first] == [s.image.tobytes() for s in again]
    other = render_benchmark(hand_styles([hand]), seed=1, variants=1)
    assert sum(a.image.tobytes() != b.image.tobytes() for a, b in zip(first, other, strict=True)) > len(first) // 2


def test_every_rendering_kind_draws_every_digit_of_every_hand(samples: list[Sample]) -> None:
    drawn = {(s.hand, s.rendering, s.label) for s in samples}
    assert drawn == {(h, r, d) for h in DRAWN for r in RENDERINGS for d in range(10)}
    sides = [max(s.image.size) for s in samples]
    assert min(sides) <= 24
    assert max(sides) >= 250


def test_every_image_has_ink(samples: list[Sample]) -> None:
    """No rendering washes a digit out: every image spans at least 80 grey levels between paper and ink."""
    spans = {(s.rendering, s.label): np.ptp(luma(s.image)) for s in samples}
    assert min(spans.values()) >= 80, min(spans.items(), key=lambda item: item[1])


def test_tight_crops_have_ink_touching_all_four_edges(samples: list[Sample]) -> None:
    crops = [s for s in samples if s.rendering == "tight-crop"]
    assert len(crops) == 10 * len(DRAWN)
    for sample in crops:
        pixels = luma(sample.image)
        edges = {"top": pixels[0], "bottom": pixels[-1], "left": pixels[:, 0], "right": pixels[:, -1]}
        assert all(edge.min() < 128 for edge in edges.values()), (sample.hand, sample.label)


def test_other_renderings_leave_a_margin_of_paper(samples: list[Sample]) -> None:
    for sample in samples:
        if sample.rendering in ("clean", "rotated", "off-centre", "slanted", "canvas"):
            pixels = luma(sample.image)
            border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
            assert border.min() > 200, (sample.rendering, sample.hand, sample.label)


def test_white_on_black_is_inverted(samples: list[Sample]) -> None:
    for sample in samples:
        pixels = luma(sample.image)
        if sample.rendering == "white-on-black":
            paper, ink = np.median(pixels), pixels.max()
        elif sample.rendering == "clean":
            paper, ink = 255 - np.median(pixels), 255 - pixels.min()
        else:
            continue
        assert paper < 64, (sample.rendering, sample.hand, sample.label)
        assert ink > 192, (sample.rendering, sample.hand, sample.label)


def test_thinning_leaves_a_one_pixel_centre_line() -> None:
    bar = np.zeros((12, 20), dtype=bool)
    bar[4:9, 2:18] = True  # a stroke 5 px thick
    line = thin(bar)
    assert line.any()
    assert (line.sum(axis=0) <= 1).all()
    assert line[6, 5:14].all()


def test_expected_calibration_error_is_the_gap_between_confidence_and_accuracy() -> None:
    assert handwriting.expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0)
    assert handwriting.expected_calibration_error([0.99] * 4, [True, False, True, False]) == pytest.approx(0.49)
    # two bins: 0.95 answered right half the time (gap 0.45), 0.55 always right (gap 0.45), equal weights
    assert handwriting.expected_calibration_error([0.95, 0.95, 0.55, 0.55], [True, False, True, True]) == (
        pytest.approx(0.45)
    )


def fake_samples() -> list[Sample]:
    """Two images per held-out hand and rendering: labels 1 and 2 (no picture: scoring reads only the labels)."""
    image = Image.new("L", (1, 1))
    return [Sample(image, d, h, r) for h in HAND_SETS["held-out"] for r in RENDERINGS for d in (1, 2)]


def test_scores_name_the_worst_rendering_and_hand_and_count_refusals_and_flags() -> None:
    samples = fake_samples()
    outcomes = []
    for s in samples:
        if s.hand == "Breip" and s.rendering == "jpeg":
            outcomes.append(REFUSED)
        elif s.rendering == "marker" and s.label == 2:
            outcomes.append(Outcome(7, 0.9, False, False))  # a sure mistake
        elif s.hand == "scrawl" and s.label == 1:
            outcomes.append(Outcome(1, 0.5, True, False))  # right, but not sure
        else:
            outcomes.append(Outcome(s.label, 0.95, False, False))
    result = handwriting.scores(samples, outcomes, "held-out")
    held_out = result["sets"]["held-out"]
    assert list(result["sets"]) == ["held-out"]
    assert held_out["hands"] == list(HAND_SETS["held-out"])
    assert held_out["refused"] == 2
    assert held_out["worst_rendering"] == {"name": "marker", "accuracy": 0.5}
    assert held_out["renderings"]["jpeg"]["accuracy"] == pytest.approx(0.9)
    assert held_out["wrong_while_sure"] == pytest.approx(len(HAND_SETS["held-out"]) / len(samples))
    assert held_out["flagged"] == pytest.approx((2 + len(RENDERINGS)) / len(samples))
    assert held_out["flagged"] + held_out["wrong_while_sure"] + held_out["right_while_sure"] == pytest.approx(1)
    assert result["worst_hand"]["name"] == "Breip"
    assert result["hands"]["Breip"].items() >= {"set": "held-out", "kind": "font"}.items()
    assert result["hands"]["scrawl"]["flagged"] == pytest.approx(0.5)
    assert result["hands"]["scrawl"]["kind"] == "strokes"


def test_the_tables_show_every_rendering_every_hand_and_the_worst_of_each() -> None:
    samples = fake_samples()
    right = [Outcome(s.label, 0.95, False, False) for s in samples]
    wrong_on_breip = [Outcome(s.label if s.hand != "Breip" else 0, 0.95, False, False) for s in samples]
    result = {
        "renderings": {name: what for name, (what, _) in RENDERINGS.items()},
        "models": {
            "good": handwriting.scores(samples, right, "held-out"),
            "bad": handwriting.scores(samples, wrong_on_breip, "held-out"),
        },
    }
    text = handwriting.tables(result, markdown=True)
    assert text.startswith(f"**held-out hands ({', '.join(HAND_SETS['held-out'])}): ")
    assert "| rendering | good | bad |" in text
    rows = ["**overall**", "worst rendering", "refused as blank", "ECE (15 bins)", "wrong while sure"]
    for row in [*RENDERINGS, *rows, "flagged (not sure or refused)", "right while sure"]:
        assert f"| {row} | " in text, row
    assert "| not sure (under 80%) | 0.00% | 0.00% |" in text
    assert "| **overall** | 100.00% | 90.00% |" in text
    assert "| worst hand |  |  | 100.00% (BecauseWeLearn) | 0.00% (Breip) |" in text
    assert all(f"| {font} | held-out | font | " in text for font in fonts.HELD_OUT)
    assert "| scrawl | held-out | strokes | 100.00% | 100.00% |" in text
    plain = handwriting.tables(result)
    assert plain.splitlines()[2].split() == ["rendering", "good", "bad"]
