"""The handwriting benchmark draws what it says it draws, the same way every time, and reports every rendering."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import quiet_trainer
from PIL import Image

from mnist_lightning import LitLogReg, load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import handwriting

PACKAGE_FOLDERS = (
    "opentype/bwht",
    "truetype/breip",
    "truetype/humor-sans",
    "truetype/leckerli-one",
    "truetype/rufscript",
)
"""Where Debian's handwriting font packages put their files, under ``handwriting.FONT_ROOT``."""


@pytest.fixture(scope="module")
def fonts() -> dict[str, Path]:
    """Every hand's font file. CI installs the fonts (.ci/run), so there their absence fails; locally it skips."""
    try:
        return handwriting.font_paths()
    except handwriting.FontsMissingError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the handwriting benchmark's tests: {err}")
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def samples(fonts: dict[str, Path]) -> list[handwriting.Sample]:
    """One variant of every digit and rendering of two hands: a thin pen and a thick one."""
    chosen = {name: fonts[name] for name in ("Breip", "BecauseWeLearn")}
    return handwriting.render_benchmark(chosen, seed=0, variants=1)


def luma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def test_tuning_and_held_out_fonts_are_disjoint_and_cover_every_installed_font(fonts: dict[str, Path]) -> None:
    assert not set(handwriting.TUNING) & set(handwriting.HELD_OUT)
    assert set(handwriting.TUNING) | set(handwriting.HELD_OUT) == set(handwriting.FONTS)
    installed = {
        path.relative_to(handwriting.FONT_ROOT).as_posix()
        for folder in PACKAGE_FOLDERS
        for path in (handwriting.FONT_ROOT / folder).iterdir()
        if path.suffix in (".ttf", ".otf")
    }
    known = {relative for files in handwriting.FONTS.values() for relative in files}
    assert installed <= known, f"font files no hand names: {sorted(installed - known)}"
    assert len(installed) >= 11


def test_the_renderer_is_deterministic_for_a_seed(fonts: dict[str, Path], samples: list[handwriting.Sample]) -> None:
    """The same seed draws the same images, whichever other fonts are drawn with them; another seed draws others."""
    again = handwriting.render_benchmark({"Breip": fonts["Breip"]}, seed=0, variants=1)
    first = [s for s in samples if s.font == "Breip"]
    assert [(s.label, s.rendering) for s in first] == [(s.label, s.rendering) for s in again]
    assert [s.image.tobytes() for s in first] == [s.image.tobytes() for s in again]
    other = handwriting.render_benchmark({"Breip": fonts["Breip"]}, seed=1, variants=1)
    assert sum(a.image.tobytes() != b.image.tobytes() for a, b in zip(first, other, strict=True)) > len(first) // 2


def test_every_rendering_kind_draws_every_digit_of_every_font(samples: list[handwriting.Sample]) -> None:
    drawn = {(s.font, s.rendering, s.label) for s in samples}
    assert drawn == {(f, r, d) for f in ("Breip", "BecauseWeLearn") for r in handwriting.RENDERINGS for d in range(10)}
    sides = [max(s.image.size) for s in samples]
    assert min(sides) <= 24
    assert max(sides) >= 250


def test_every_image_has_ink(samples: list[handwriting.Sample]) -> None:
    """No rendering washes a digit out: every image spans at least 80 grey levels between paper and ink."""
    spans = {(s.rendering, s.label): np.ptp(luma(s.image)) for s in samples}
    assert min(spans.values()) >= 80, min(spans.items(), key=lambda item: item[1])


def test_tight_crops_have_ink_touching_all_four_edges(samples: list[handwriting.Sample]) -> None:
    crops = [s for s in samples if s.rendering == "tight-crop"]
    assert len(crops) == 20
    for sample in crops:
        pixels = luma(sample.image)
        edges = {"top": pixels[0], "bottom": pixels[-1], "left": pixels[:, 0], "right": pixels[:, -1]}
        assert all(edge.min() < 128 for edge in edges.values()), (sample.font, sample.label)


def test_other_renderings_leave_a_margin_of_paper(samples: list[handwriting.Sample]) -> None:
    for sample in samples:
        if sample.rendering in ("clean", "rotated", "off-centre"):
            pixels = luma(sample.image)
            border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
            assert border.min() > 200, (sample.rendering, sample.font, sample.label)


def test_white_on_black_is_inverted(samples: list[handwriting.Sample]) -> None:
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


@pytest.mark.unit
def test_expected_calibration_error_is_the_gap_between_confidence_and_accuracy() -> None:
    assert handwriting.expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0)
    assert handwriting.expected_calibration_error([0.99] * 4, [True, False, True, False]) == pytest.approx(0.49)
    # two bins: 0.95 answered right half the time (gap 0.45), 0.55 always right (gap 0.45), equal weights
    assert handwriting.expected_calibration_error([0.95, 0.95, 0.55, 0.55], [True, False, True, True]) == (
        pytest.approx(0.45)
    )


@pytest.mark.unit
def test_a_refused_image_is_counted_as_refused_and_the_others_still_read() -> None:
    model = LitLogReg()
    model.set_input_statistics(0.1307, 0.3081)
    digit = Image.new("L", (40, 40), 255)
    digit.paste(0, (18, 8, 22, 32))
    blank = Image.new("L", (40, 40), 255)
    outcomes = handwriting.predict(model, [digit, blank, digit], batch=2)
    assert [o.label is None for o in outcomes] == [False, True, False]
    assert outcomes[0] == outcomes[2]
    assert 0 < outcomes[0].confidence <= 1


@pytest.mark.slow
def test_the_command_prints_every_rendering_per_model(
    fonts: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = LitLogReg()
    model.set_input_statistics(0.1307, 0.3081)
    trainer = quiet_trainer(tmp_path, enable_checkpointing=False)
    trainer.strategy.connect(model)
    checkpoint = tmp_path / "tiny.ckpt"
    trainer.save_checkpoint(checkpoint)
    load_model(checkpoint)  # what the command loads: a valid checkpoint
    argv = ["--checkpoint", f"tiny={checkpoint}", "--fonts", "held-out", "--variants", "1", "--markdown"]
    argv += ["--save-samples", str(tmp_path / "sheet")]
    assert handwriting.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("**held-out fonts (")
    assert "| rendering | tiny |" in out
    for row in [
        *handwriting.RENDERINGS,
        "**overall**",
        "worst rendering",
        "refused as blank",
        "ECE (15 bins)",
        "not sure (under 80%)",
        "wrong while sure",
    ]:
        assert f"| {row} | " in out, row
    for font in handwriting.HELD_OUT:
        assert f"| {font} | held-out | " in out, font
    assert not any(f"| {font} |" in out for font in handwriting.TUNING)
    with Image.open(tmp_path / "sheet" / "handwriting-samples.png") as sheet:
        assert sheet.height >= 14 * 96


def test_the_command_names_the_packages_when_fonts_are_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(handwriting, "FONT_ROOT", tmp_path)
    assert handwriting.main(["--save-samples", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: handwriting fonts not installed: ")
    assert "apt-get install fonts-bwht" in err
    assert err.count("\n") == 1


def test_a_missing_checkpoint_is_one_line_before_anything_is_drawn(
    fonts: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert handwriting.main(["--checkpoint", str(tmp_path / "none.ckpt"), "--save-samples", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'none.ckpt'} does not exist")
    assert err.count("\n") == 1
    assert not (tmp_path / "handwriting-samples.png").exists()
