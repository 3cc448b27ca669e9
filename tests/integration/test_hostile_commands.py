"""The commands refuse at their start, in one line, an output they could only fail to write at their end, and take
``--ckpt best|last`` as ``train.py --ckpt_path best|last`` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from drawing import draw_digit
from helpers import best_checkpoint, run_folder

from mnist_lightning import ensembling, exporting, inference
from mnist_lightning.commands import ensemble, export, predict
from mnist_lightning.commands.runner import run

BAD_OUTPUTS = {
    "a-folder": lambda tmp: str(tmp),
    "under-a-file": lambda tmp: str(tmp / "file.txt" / "sub" / "out"),
    "unwritable-folder": lambda tmp: "/proc/out",  # no new file can be made there, whoever runs the test
}


@pytest.mark.parametrize("bad", list(BAD_OUTPUTS))
@pytest.mark.parametrize("command", ["predict --csv", "predict --json", "export --out", "ensemble --out"])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    command: str, bad: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr(inference, "classify", no_work)
    monkeypatch.setattr(predict, "classify", no_work)
    monkeypatch.setattr(exporting, "export", no_work)
    monkeypatch.setattr(ensemble, "assemble", no_work)
    monkeypatch.setattr(ensembling, "assemble", no_work)
    (tmp_path / "file.txt").write_text("x")
    out = BAD_OUTPUTS[bad](tmp_path)
    name, option = command.split()
    ckpt = str(tmp_path / "model.ckpt")
    argv = {
        "predict": ["--ckpt", ckpt, "digit.png", option, out],
        "export": ["--ckpt", ckpt, "--out", out],
        "ensemble": ["--ckpt", ckpt, ckpt, "--out", out],
    }[name]
    module = {"predict": predict, "export": export, "ensemble": ensemble}[name]
    assert run(module.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: argument {option}: {out}"), err
    assert err.count("\n") == 1, err


def test_a_missing_output_folder_is_created_as_the_write_would(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(trained)
    out = tmp_path / "new" / "sub" / "model.pt"
    assert run(export.main, ["--ckpt", str(best_checkpoint(trained)), "--out", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize("which", ["best", "last"])
def test_predict_and_export_take_best_and_last_as_train_py_does(
    trained: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    monkeypatch.chdir(trained)
    found = best_checkpoint(trained) if which == "best" else run_folder(trained) / "checkpoints" / "last.ckpt"
    said = f"--ckpt {which}: {found.relative_to(trained)}"
    assert run(export.main, ["--ckpt", which, "--out", "model.pt"]) == 0
    assert said in capsys.readouterr().err
    draw_digit(7).save(trained / "seven.png")
    assert run(predict.main, ["--ckpt", which, "seven.png"]) == 0
    assert said in capsys.readouterr().err


def test_best_without_any_run_is_one_line_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(export.main, ["--ckpt", "best", "--out", "model.pt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --ckpt best: no checkpoint found in lightning_logs"), err
    assert "pass --ckpt PATH/TO/FILE.ckpt" in err
    assert err.count("\n") == 1
