"""The CLI in-process: fit, then validate/test/predict from a checkpoint alone; configs; errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mnist_lightning.models import LitLogReg, LitMLP

FAST = ("--data.val_size", "200", "--data.batch_size", "100", "--trainer.max_epochs", "2")


def run_folder(root: Path, version: int = 0) -> Path:
    return root / "lightning_logs" / f"version_{version}"


def best_checkpoint(root: Path, version: int = 0) -> Path:
    (best,) = (run_folder(root, version) / "checkpoints").glob("epoch*.ckpt")
    return best


@pytest.fixture
def trained(run_cli, synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """A finished two-epoch run on synthetic data in ``tmp_path``; returns ``tmp_path``."""
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), "--model.lr", "0.05", *FAST) == 0
    return tmp_path


def test_fit_writes_logs_checkpoints_and_reports_the_best(trained: Path, capsys: pytest.CaptureFixture) -> None:
    run = run_folder(trained)
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "config.yaml").is_file()
    assert yaml.safe_load((run / "hparams.yaml").read_text())["lr"] == 0.05
    best = best_checkpoint(trained)
    assert re.fullmatch(r"epoch0[01]-val_acc[01]\.\d{4}\.ckpt", best.name)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (1, 20)
    out = capsys.readouterr().out
    assert f"Best checkpoint: {best.relative_to(trained)}" in out.replace("./", "")
    assert "val/acc" in out


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_subcommands_run_from_a_checkpoint_alone(trained: Path, run_cli, subcommand: str, capsys) -> None:
    capsys.readouterr()
    assert run_cli(subcommand, "--ckpt_path", str(best_checkpoint(trained))) == 0
    out = capsys.readouterr().out
    if subcommand != "predict":
        metric = "val/acc" if subcommand == "validate" else "test/acc"
        assert metric in out


@pytest.mark.parametrize("which", ["best", "last"])
def test_ckpt_path_best_and_last_find_the_latest_run(trained: Path, run_cli, which: str, caplog) -> None:
    assert run_cli("test", "--ckpt_path", which) == 0
    expected = best_checkpoint(trained) if which == "best" else run_folder(trained) / "checkpoints" / "last.ckpt"
    assert f"--ckpt_path {which}: {expected.relative_to(trained)}" in caplog.text


def test_checkpoint_loads_in_a_plain_script(trained: Path) -> None:
    script = (
        "import sys, torch\n"
        "from mnist_lightning.models import LitLogReg\n"
        "model = LitLogReg.load_from_checkpoint(sys.argv[1], map_location='cpu', weights_only=True)\n"
        "model.eval()\n"
        "print(type(model).__name__, model.hparams.lr, tuple(model(torch.zeros(2, 1, 28, 28)).shape))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(best_checkpoint(trained))], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["LitLogReg", "0.05", "(2,", "10)"]


def test_print_config_round_trips(run_cli, synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    args = ("--data.data_dir", str(synthetic_dir), "--model.lr", "0.07", "--model", "LitMLP")
    assert run_cli("fit", *args, "--print_config") == 0
    printed = capsys.readouterr().out
    (tmp_path / "config.yaml").write_text(printed)
    assert run_cli("fit", "--config", "config.yaml", "--print_config") == 0
    assert capsys.readouterr().out == printed
    config = yaml.safe_load(printed)
    assert config["model"]["class_path"] == "mnist_lightning.models.LitMLP"
    assert config["model"]["init_args"]["lr"] == 0.07


def test_model_can_be_swapped_for_the_mlp(run_cli, synthetic_dir: Path, tmp_path: Path) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), "--model", "LitMLP", *FAST) == 0
    model = LitMLP.load_from_checkpoint(best_checkpoint(tmp_path), weights_only=True)
    assert model.hparams.hidden_dims == [128, 64] or model.hparams.hidden_dims == (128, 64)
    with pytest.raises(ValueError, match="LitMLP"):
        LitLogReg.load_from_checkpoint(best_checkpoint(tmp_path), weights_only=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--trainer.max_epoch", "2"), "unrecognized arguments: --trainer.max_epoch"),
        (("--data.val_size", "70000"), "val_size"),
        (("--model.lr", "-1"), "lr must be a positive number"),
        (("--data.batch_size", "0"), "batch_size"),
        (("--trainer.max_epochs", "0"), "max_epochs"),
        (("--ckpt_path", "missing.ckpt"), "does not exist"),
        (("--last_checkpoint.every_n_train_steps", "-1"), "every_n_train_steps must be >= 0"),
    ],
)
def test_bad_arguments_exit_2_with_one_short_message(run_cli, synthetic_dir: Path, args, message, capsys) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *args) in (1, 2)
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 4


def test_weights_only_false_is_refused(trained: Path, run_cli, capsys) -> None:
    code = run_cli("test", "--ckpt_path", str(best_checkpoint(trained)), "--weights_only", "false")
    assert code == 2
    assert "--weights_only false is refused" in capsys.readouterr().err


def test_ckpt_path_last_without_any_run_fails_loudly(run_cli, synthetic_dir: Path, capsys) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), "--ckpt_path", "last") == 1
    assert "no checkpoint found" in capsys.readouterr().err
