"""``mnist-evaluate`` scores a checkpoint in-process: a table with every row and the worst of each, the same
figures as JSON, and a bad argument, a missing font or checkpoint refused in one line before anything is drawn."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
from helpers import handwriting_fonts, untrained_checkpoint
from PIL import Image

from mnist_lightning import LitLogReg
from mnist_lightning.commands.evaluate import main, parser
from mnist_lightning.commands.runner import run
from mnist_lightning.evaluate import fonts, handwriting, not_digit_images, robustness
from mnist_lightning.evaluate.hands import HAND_SETS
from mnist_lightning.evaluate.not_digit_images import KINDS, SOURCES
from mnist_lightning.evaluate.renderings import RENDERINGS


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.ckpt")


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    return err


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


def test_a_refused_input_counts_as_wrong_for_every_model_and_is_reported() -> None:
    digit = torch.zeros(1, 1, 28, 28)
    digit[..., 6:22, 12:16] = 1.0  # a "1"
    blank = torch.zeros(1, 1, 28, 28)
    models = {"A": LitLogReg(), "B": LitLogReg()}
    with patch.dict(robustness.TRANSFORMS, dict.fromkeys(robustness.TRANSFORMS, robustness.TRANSFORMS["clean"])):
        result = robustness.evaluate(models, torch.cat([digit, blank]), torch.tensor([1, 0]), chunk=2)
        text = robustness.tables(result)
    assert all(entry["refused"] == 1 for entry in result["transforms"].values())
    assert all(acc <= 0.5 for m in result["models"].values() for acc in m["transforms"].values()), "blank is wrong"
    assert "(1 refused as blank)" in text


def test_the_handwriting_suite_prints_every_rendering_and_hand_and_writes_json(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a held-out font and a held-out stroke hand (``--hands held-out`` reads all ten: five times the drawing)."""
    handwriting_fonts()
    held_out = ("Breip", "scrawl")
    monkeypatch.setitem(HAND_SETS, "held-out", held_out)
    out = tmp_path / "result.json"
    argv = ["--ckpt", f"tiny={checkpoint}", "--hands", "held-out", "--variants", "1", "--markdown"]
    argv += ["--save-samples", str(tmp_path / "sheet"), "--json", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert f"handwriting: {2 * len(RENDERINGS) * 10:,} images of 2 hands" in captured.err
    assert text.startswith("**held-out hands (Breip, scrawl): ")
    assert "| rendering | tiny |" in text
    rows = ["**overall**", "worst rendering", "refused as blank", "ECE (15 bins)", "wrong while sure"]
    for row in [*RENDERINGS, *rows, "flagged (not sure or refused)", "right while sure"]:
        assert f"| {row} | " in text, row
    assert "| Breip | held-out | font | " in text
    assert "| scrawl | held-out | strokes | " in text
    assert not any(f"| {hand} |" in text for hand in HAND_SETS["tuning"]), "tuning hands only when asked for"
    assert "| worst hand |  |  | " in text
    result = json.loads(out.read_text())
    assert result["suite"] == "handwriting"
    assert result["hands"] == "held-out"
    assert result["checkpoints"] == {"tiny": str(checkpoint)}
    assert result["images"] == len(held_out) * len(RENDERINGS) * 10
    tiny = result["models"]["tiny"]
    assert list(tiny["sets"]) == ["held-out"]
    assert list(tiny["hands"]) == list(held_out)
    summary = tiny["sets"]["held-out"]
    assert summary["flagged"] + summary["wrong_while_sure"] + summary["right_while_sure"] == pytest.approx(1)
    worst = summary["worst_rendering"]
    assert worst["accuracy"] == min(r["accuracy"] for r in summary["renderings"].values())
    assert f"| worst rendering | {worst['accuracy']:.2%} ({worst['name']}) |" in text
    with Image.open(tmp_path / "sheet" / "handwriting-samples.png") as sheet:
        assert sheet.height >= len(RENDERINGS) * 96


def test_the_sealed_hands_are_measured_only_when_asked_for(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(HAND_SETS, "sealed", ("stout",))
    out = tmp_path / "sealed.json"
    assert main(["--ckpt", str(checkpoint), "--hands", "sealed", "--variants", "1", "--json", str(out)]) == 0
    assert capsys.readouterr().out.startswith("sealed hands (stout): ")
    result = json.loads(out.read_text())
    assert list(result["models"]["tiny"]["hands"]) == ["stout"]
    assert result["models"]["tiny"]["hands"]["stout"]["set"] == "sealed"
    assert parser().parse_args(["--ckpt", "x", "--fonts", "tuning"]).hands == "tuning", "the old option's name"


def test_the_not_digits_suite_reports_flags_per_kind(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With three letters and two of each scribble and noise: the whole suite draws fifty times more."""
    handwriting_fonts()
    monkeypatch.setattr(not_digit_images, "LETTERS", "AKX")
    monkeypatch.setattr(not_digit_images, "PER_SHAPE", 2)
    out = tmp_path / "not-digits.json"
    argv = ["--ckpt", str(checkpoint), "--suite", "not-digits", "--variants", "1", "--json", str(out)]
    assert main([*argv, "--save-samples", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    count = 3 * len(fonts.HELD_OUT) * 4 + 2 * (6 + 3)
    assert f"not-digits: {count} images" in captured.err
    assert captured.out.startswith(f"not digits: {count} images; flagged = not sure (under 80%) or refused")
    assert all(f"\n{source} " in captured.out for source in [*SOURCES, *KINDS, "overall", "worst kind"])
    result = json.loads(out.read_text())
    assert result["suite"] == "not-digits"
    assert result["images"] == count
    tiny = result["models"]["tiny"]
    assert tiny["kinds"]["letters"]["images"] == 3 * len(fonts.HELD_OUT) * 4
    assert all(0 <= tiny[key] <= 1 for key in ("flagged", "not_a_digit"))
    assert tiny["worst_kind"]["flagged"] == min(kind["flagged"] for kind in tiny["kinds"].values())
    assert (tmp_path / "not-digits-samples.png").is_file()


def test_the_robustness_suite_scores_test_digits_per_transform(
    checkpoint: Path, synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "robustness.json"
    argv = ["--ckpt", str(checkpoint), "--ckpt", f"again={checkpoint}", "--suite", "robustness", "--limit", "40"]
    assert main([*argv, "--data.data_dir", str(synthetic_dir), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[2].split()[:2] == ["transform", "what"]
    assert all(f"\n{name} " in text for name in robustness.TRANSFORMS)
    result = json.loads(out.read_text())
    assert result["images"] == 40
    assert list(result["models"]) == ["tiny", "again"]
    assert result["models"]["tiny"] == result["models"]["again"], "one checkpoint, one set of figures"
    worst = result["models"]["tiny"]["worst_transform"]
    assert worst["accuracy"] == min(result["models"]["tiny"]["transforms"].values())
    assert text.splitlines()[-1].startswith("worst")


def test_the_fidelity_suite_reads_the_test_digits_every_way(
    checkpoint: Path, synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fidelity.json"
    argv = ["--ckpt", str(checkpoint), "--suite", "fidelity", "--limit", "30", "--png", "8", "--photos", "4"]
    assert main([*argv, "--data.data_dir", str(synthetic_dir), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["counts"] == {"png_files": 8, "typed": 200, "photos": 4}
    tiny = result["models"]["tiny"]
    assert set(tiny) >= {"test_pixels", "predict_images", "png_files", "typed", "photos", "photos_thin_pen"}
    assert all(0 <= figure <= 1 for figure in tiny.values())
    assert 0 <= result["pixel_identical"] <= 1
    assert capsys.readouterr().out.startswith("the preprocessing on MNIST's test digits: ")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--suite", "nope"], "argument --suite: invalid choice: 'nope'"),
        (["--suite", "robustness", "--hands", "held-out"], "--hands does not apply to --suite robustness"),
        (["--suite", "not-digits", "--hands", "all"], "--hands does not apply to --suite not-digits"),
        (["--variants", "0"], "argument --variants: 0 is not a whole number from 1"),
        (["--hands"], "argument --hands: expected one argument"),
        (["--hands", "everything"], "argument --hands: invalid choice: 'everything'"),
    ],
)
def test_a_bad_argument_is_refused_in_one_line(
    argv: list[str], says: str, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(main, ["--ckpt", str(checkpoint), *argv]) == 2
    assert says in one_line_error(capsys)


def test_missing_fonts_are_refused_in_one_line_naming_the_packages(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fonts, "FONT_ROOT", Path("/nonexistent"))
    assert run(main, ["--ckpt", str(checkpoint)]) == 2
    err = one_line_error(capsys)
    assert err.startswith("error: handwriting fonts not installed: ")
    assert "apt-get install fonts-bwht" in err


def test_a_missing_checkpoint_is_one_line_before_anything_is_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handwriting_fonts()
    argv = ["--ckpt", str(tmp_path / "none.ckpt"), "--save-samples", str(tmp_path)]
    assert run(main, argv) == 2
    assert one_line_error(capsys).startswith(f"error: {tmp_path / 'none.ckpt'} does not exist")
    assert not (tmp_path / "handwriting-samples.png").exists()


@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package")
def test_python_dash_m_runs_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m mnist_lightning.commands.evaluate`` is the console script: the same rule, the same line."""
    with patch.object(sys, "argv", ["evaluate", "--suite", "robustness"]), pytest.raises(SystemExit) as exit_:
        runpy.run_module("mnist_lightning.commands.evaluate", run_name="__main__", alter_sys=True)
    assert exit_.value.code == 2
    assert "the following arguments are required: --ckpt" in one_line_error(capsys)


def test_outputs_that_cannot_be_written_are_refused_before_anything_is_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnist_lightning.commands import evaluate as evaluate_command
    from mnist_lightning.commands.runner import run

    (tmp_path / "sheet").write_text("a file")
    for option, value in (("--json", str(tmp_path)), ("--save-samples", str(tmp_path / "sheet"))):
        assert run(evaluate_command.main, ["--ckpt", "missing.ckpt", option, value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert value in err
