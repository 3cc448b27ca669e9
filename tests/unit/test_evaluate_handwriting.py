"""The handwriting suite draws what it says it draws, the same way every time, keeps its held-out hands apart,
and its tables show every rendering, every font and the worst of each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import handwriting_fonts
from PIL import Image

from mnist_lightning.evaluate import fonts, handwriting
from mnist_lightning.evaluate.drawing import thin
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


@pytest.fixture(scope="module")
def samples(installed: dict[str, Path]) -> list[Sample]:
    """One variant of every digit and rendering of two hands: a thin pen and a thick one."""
    chosen = {name: installed[name] for name in ("Breip", "BecauseWeLearn")}
    return render_benchmark(chosen, seed=0, variants=1)


def luma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def test_the_held_out_split_is_the_one_the_figures_were_measured_on() -> None:
    """Moving a hand between the halves would report a figure on fonts that shaped the settings."""
    assert fonts.HELD_OUT == ("BecauseWeLearn", "BecauseWeMentor", "BecauseWeOrganize", "Breip", "Rufscript")
    assert not set(fonts.TUNING) & set(fonts.HELD_OUT)
    assert set(fonts.TUNING) | set(fonts.HELD_OUT) == set(fonts.FONTS)
    assert [fonts.font_set(f) for f in ("Breip", "HumorSans")] == ["held-out", "tuning"]


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


def test_the_renderer_is_deterministic_for_a_seed(installed: dict[str, Path], samples: list[Sample]) -> None:
    """The same seed draws the same images, whichever other fonts are drawn with them; another seed draws others."""
    again = render_benchmark({"Breip": installed["Breip"]}, seed=0, variants=1)
    first = [s for s in samples if s.font == "Breip"]
    assert [(s.label, s.rendering) for s in first] == [(s.label, s.rendering) for s in again]
    assert [s.image.tobytes() for s in first] == [s.image.tobytes() for s in again]
    other = render_benchmark({"Breip": installed["Breip"]}, seed=1, variants=1)
    assert sum(a.image.tobytes() != b.image.tobytes() for a, b in zip(first, other, strict=True)) > len(first) // 2


def test_every_rendering_kind_draws_every_digit_of_every_font(samples: list[Sample]) -> None:
    drawn = {(s.font, s.rendering, s.label) for s in samples}
    assert drawn == {(f, r, d) for f in ("Breip", "BecauseWeLearn") for r in RENDERINGS for d in range(10)}
    sides = [max(s.image.size) for s in samples]
    assert min(sides) <= 24
    assert max(sides) >= 250


def test_every_image_has_ink(samples: list[Sample]) -> None:
    """No rendering washes a digit out: every image spans at least 80 grey levels between paper and ink."""
    spans = {(s.rendering, s.label): np.ptp(luma(s.image)) for s in samples}
    assert min(spans.values()) >= 80, min(spans.items(), key=lambda item: item[1])


def test_tight_crops_have_ink_touching_all_four_edges(samples: list[Sample]) -> None:
    crops = [s for s in samples if s.rendering == "tight-crop"]
    assert len(crops) == 20
    for sample in crops:
        pixels = luma(sample.image)
        edges = {"top": pixels[0], "bottom": pixels[-1], "left": pixels[:, 0], "right": pixels[:, -1]}
        assert all(edge.min() < 128 for edge in edges.values()), (sample.font, sample.label)


def test_other_renderings_leave_a_margin_of_paper(samples: list[Sample]) -> None:
    for sample in samples:
        if sample.rendering in ("clean", "rotated", "off-centre"):
            pixels = luma(sample.image)
            border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
            assert border.min() > 200, (sample.rendering, sample.font, sample.label)


def test_white_on_black_is_inverted(samples: list[Sample]) -> None:
    for sample in samples:
        pixels = luma(sample.image)
        if sample.rendering == "white-on-black":
            paper, ink = np.median(pixels), pixels.max()
        elif sample.rendering == "clean":
            paper, ink = 255 - np.median(pixels), 255 - pixels.min()
        else:
            continue
        assert paper < 64, (sample.rendering, sample.font, sample.label)
        assert ink > 192, (sample.rendering, sample.font, sample.label)


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
    """Two images per held-out font and rendering: labels 1 and 2 (no picture: scoring reads only the labels)."""
    image = Image.new("L", (1, 1))
    return [Sample(image, d, f, r) for f in fonts.HELD_OUT for r in RENDERINGS for d in (1, 2)]


def test_scores_name_the_worst_rendering_and_font_and_count_refusals() -> None:
    samples = fake_samples()
    outcomes = []
    for s in samples:
        if s.font == "Breip" and s.rendering == "jpeg":
            outcomes.append(handwriting.Outcome(None, None))  # refused
        elif s.rendering == "marker" and s.label == 2:
            outcomes.append(handwriting.Outcome(7, 0.9))  # a sure mistake
        else:
            outcomes.append(handwriting.Outcome(s.label, 0.5))
    result = handwriting.scores(samples, outcomes, "held-out")
    held_out = result["sets"]["held-out"]
    assert list(result["sets"]) == ["held-out"]
    assert held_out["fonts"] == list(fonts.HELD_OUT)
    assert held_out["refused"] == 2
    assert held_out["worst_rendering"] == {"name": "marker", "accuracy": 0.5}
    assert held_out["renderings"]["jpeg"]["accuracy"] == pytest.approx(0.8)
    assert held_out["wrong_while_sure"] == pytest.approx(5 / len(samples))
    assert result["worst_font"]["name"] == "Breip"
    assert result["fonts"]["Breip"]["set"] == "held-out"


def test_the_tables_show_every_rendering_every_font_and_the_worst_of_each() -> None:
    samples = fake_samples()
    right = [handwriting.Outcome(s.label, 0.95) for s in samples]
    wrong_on_breip = [handwriting.Outcome(s.label if s.font != "Breip" else 0, 0.95) for s in samples]
    result = {
        "renderings": {name: what for name, (what, _) in RENDERINGS.items()},
        "models": {
            "good": handwriting.scores(samples, right, "held-out"),
            "bad": handwriting.scores(samples, wrong_on_breip, "held-out"),
        },
    }
    text = handwriting.tables(result, markdown=True)
    assert text.startswith("**held-out fonts (BecauseWeLearn, BecauseWeMentor, BecauseWeOrganize, Breip, Rufscript)")
    assert "| rendering | good | bad |" in text
    for row in [*RENDERINGS, "**overall**", "worst rendering", "refused as blank", "ECE (15 bins)", "wrong while sure"]:
        assert f"| {row} | " in text, row
    assert "| not sure (under 80%) | 0.00% | 0.00% |" in text
    assert "| **overall** | 100.00% | 80.00% |" in text
    assert "| worst font |  | 100.00% (BecauseWeLearn) | 0.00% (Breip) |" in text
    assert all(f"| {font} | held-out | " in text for font in fonts.HELD_OUT)
    plain = handwriting.tables(result)
    assert plain.splitlines()[2].split() == ["rendering", "good", "bad"]
