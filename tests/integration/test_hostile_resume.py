"""What a checkpoint or a run folder brings to ``train.py`` is data (docs/safety.md): a data folder it names is used
only below the current folder, ``--config <run>/config.yaml --ckpt_path last`` resumes that run, a copied
checkpoint's file paths are not the new run's, and a refusal is the only line printed."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import best_checkpoint, run_folder


def crafted(shared_run: Path, folder: Path, data_dir: str) -> Path:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    checkpoint["datamodule_hyper_parameters"]["data_dir"] = data_dir
    path = folder / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("data_dir", ["", "  ", ".", "~/x", "~", "sub/../..", "ABSOLUTE"])
def test_a_checkpoint_data_folder_must_be_a_relative_folder_below_the_current_one(
    shared_run: Path, tmp_path: Path, run_cli, capsys, monkeypatch: pytest.MonkeyPatch, data_dir: str
) -> None:
    from mnist_lightning.data import datamodule

    def no_reads(*args: object, **kwargs: object) -> None:
        raise AssertionError("data was read or downloaded")

    monkeypatch.setattr(datamodule, "load_split", no_reads)
    monkeypatch.setattr(datamodule, "download", no_reads)
    if data_dir == "ABSOLUTE":  # inside the current folder, but named absolutely
        data_dir = str(tmp_path / "data")
    path = crafted(shared_run, tmp_path, data_dir)
    assert run_cli("test", "--ckpt_path", str(path)) == 2
    err = capsys.readouterr().err
    assert "names the data folder" in err
    assert "--data.data_dir" in err
    assert len(err.strip().splitlines()) == 1, err


def test_a_run_config_with_last_resumes_that_run_and_reports_no_default_as_a_change(
    trained: Path, synthetic_dir: Path, run_cli, caplog
) -> None:
    newer = run_folder(trained, 1)
    shutil.copytree(run_folder(trained), newer)
    later = (newer / "checkpoints" / "last.ckpt").stat().st_mtime + 60
    for file in (newer / "checkpoints").iterdir():
        os.utime(file, (later, later))
    config = run_folder(trained) / "config.yaml"
    assert "precision: null" in config.read_text(), "the run's config records a default as null"
    shown: list[logging.LogRecord] = []
    seed_lines = logging.getLogger("lightning.fabric.utilities.seed")
    handler = logging.Handler()
    handler.emit = shown.append  # type: ignore[method-assign]
    seed_lines.addHandler(handler)
    args = ("fit", "--config", str(config), "--ckpt_path", "last", "--data.data_dir", str(synthetic_dir))
    try:
        assert run_cli(*args) == 0
    finally:
        seed_lines.removeHandler(handler)
    resumed = (run_folder(trained) / "checkpoints" / "last.ckpt").relative_to(trained)  # as the runs folder names it
    assert f"--ckpt_path last: {resumed}" in caplog.text
    assert "settings other than the run's" not in caplog.text, caplog.text
    assert [r.getMessage() for r in shown] == ["Seed set to 42"], "a run that goes on shows Lightning's set-up lines"


def test_a_run_config_of_another_folder_with_last_is_refused_in_one_line(
    trained: Path, synthetic_dir: Path, run_cli, capsys, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    config = run_folder(trained) / "config.yaml"
    assert run_cli("fit", "--config", str(config), "--ckpt_path", "best", "--data.data_dir", str(synthetic_dir)) == 2
    err = capsys.readouterr().err
    assert "--ckpt_path best with --config of the run" in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("runs_here", [False, True], ids=["no-run-here", "another-run-here"])
def test_a_copied_checkpoint_brings_no_other_run_best_path(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys, recwarn, runs_here: bool
) -> None:
    copy = tmp_path / "copy.ckpt"
    shutil.copy(run_folder(shared_run) / "checkpoints" / "last.ckpt", copy)
    if runs_here:
        shutil.copytree(shared_run / "lightning_logs", tmp_path / "lightning_logs")
    assert run_cli("fit", "--ckpt_path", str(copy), "--data.data_dir", str(synthetic_dir)) == 0
    out = capsys.readouterr().out
    assert "version_0" not in out, out
    assert not [w for w in recwarn if "dirpath has changed" in str(w.message)]


@pytest.mark.parametrize("lr", ["nan", "inf", "-1", "0", "1e400"])
def test_a_bad_learning_rate_is_one_line_naming_the_option_and_nothing_else(
    run_cli, synthetic_dir: Path, capsys, lr: str
) -> None:
    assert run_cli("fit", "--model.lr", lr, "--data.data_dir", str(synthetic_dir)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: --model.lr"), captured.err
    assert "positive number" in captured.err, captured.err
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "refused",
    [("--model.lr", "-1"), ("--checkpoint.monitor", "val/nothing"), ("--trainer.max_epochs", "0")],
    ids=["model-value", "monitor-after-the-trainer", "trainer-value"],
)
def test_a_refusal_prints_no_seed_or_accelerator_line_before_it(
    run_cli, synthetic_dir: Path, capsys, refused: tuple[str, str]
) -> None:
    shown: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = shown.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in ("lightning.fabric.utilities.seed", "lightning.pytorch")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        assert run_cli("fit", *refused, "--data.data_dir", str(synthetic_dir)) == 2
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert [record.getMessage() for record in shown] == [], "the refusal is the only line"
    assert capsys.readouterr().err.count("\n") == 1
