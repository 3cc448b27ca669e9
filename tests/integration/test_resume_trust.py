"""What a checkpoint and its run folder may bring to a run: a run's ``config.yaml`` names no code, a checkpoint
chooses no data folder outside the current one, and a refused value from either is blamed on them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import best_checkpoint, run_folder

from mnist_lightning.cli.resume import blame


def last_step(root: Path) -> int:
    return torch.load(run_folder(root) / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


LAMBDA_CALLBACK = {
    "class_path": "lightning.pytorch.callbacks.LambdaCallback",
    "init_args": {"on_fit_start": "payload.touch"},
}
FOREIGN_CLASS = {"class_path": "payload.Evil"}


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("trainer.callbacks", LAMBDA_CALLBACK),
        ("trainer.callbacks", FOREIGN_CLASS),
        ("model.init_args.optimizer", "payload.touch"),
        (
            "model.init_args.scheduler",
            {"class_path": "torch.optim.lr_scheduler.LambdaLR", "init_args": {"lr_lambda": "payload.touch"}},
        ),
        ("checkpoint", {"class_path": "payload.Evil", "init_args": {}}),
    ],
    ids=["LambdaCallback", "foreign-callback", "optimizer-name", "LambdaLR", "foreign-checkpoint-class"],
)
def test_a_run_config_that_names_code_is_refused_and_nothing_runs(
    trained: Path, synthetic_dir: Path, run_cli, marker: Path, capsys, where: str, value: object
) -> None:
    config_file = run_folder(trained) / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    section, _, key = where.partition(".")
    if where == "trainer.callbacks":
        config["trainer"]["callbacks"] = [*(config["trainer"].get("callbacks") or []), value]
    elif key:
        config[section]["init_args"][key.removeprefix("init_args.")] = value
    else:
        config[section] = value
    config_file.write_text(yaml.safe_dump(config))
    code = run_cli("fit", "--ckpt_path", "last", "--data.data_dir", str(synthetic_dir))
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "refusing to resume with the settings in" in err
    assert not marker.exists(), marker.read_text()
    assert "payload" not in sys.modules
    assert last_step(trained) == 20, "nothing was trained"


def test_a_class_of_your_own_is_accepted_when_named_again(trained: Path, synthetic_dir: Path, run_cli, tmp_path):
    """The resume's command line vouches for a class from outside the allowlist by naming it."""
    config_file = run_folder(trained) / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    count = str(tmp_path / "count.txt")
    probe = {"class_path": "helpers.CountEvaluated", "init_args": {"out": count}}
    config["trainer"]["callbacks"] = [*(config["trainer"].get("callbacks") or []), probe]
    config_file.write_text(yaml.safe_dump(config))
    resume = ("fit", "--ckpt_path", "last", "--data.data_dir", str(synthetic_dir), "--model.scheduler", "null")
    assert run_cli(*resume, "--trainer.max_epochs", "3") == 2, "not named: refused"
    again = ("--trainer.callbacks+=helpers.CountEvaluated", "--trainer.callbacks.out", count)
    assert run_cli(*resume, "--trainer.max_epochs", "2", *again) == 0
    assert last_step(trained) == 20


def crafted(shared_run: Path, folder: Path, data: dict | None = None, weights: dict | None = None) -> Path:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    checkpoint["datamodule_hyper_parameters"].update(data or {})
    checkpoint["state_dict"].update(weights or {})
    path = folder / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("subcommand", ["test", "validate"])
def test_a_checkpoint_chooses_no_data_folder_outside_the_current_one(
    shared_run: Path, tmp_path: Path, run_cli, capsys, subcommand: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnist_lightning.data import datamodule

    def no_reads(*args: object, **kwargs: object) -> None:
        raise AssertionError("data was read")

    monkeypatch.setattr(datamodule, "load_split", no_reads)
    monkeypatch.setattr(datamodule, "download", no_reads)
    path = crafted(shared_run, tmp_path, data={"data_dir": "/etc"})
    assert run_cli(subcommand, "--ckpt_path", str(path)) == 2
    err = capsys.readouterr().err
    assert "data folder /etc" in err
    assert "--data.data_dir" in err
    assert len(err.strip().splitlines()) == 1


def test_a_checkpoint_data_folder_inside_the_current_one_is_used(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli
) -> None:
    shutil.copytree(synthetic_dir / "MNIST", tmp_path / "here" / "MNIST")
    path = crafted(shared_run, tmp_path, data={"data_dir": "here"})
    assert run_cli("test", "--ckpt_path", str(path)) == 0


@pytest.mark.parametrize("val_size", [70000, "abc"])
def test_a_refused_checkpoint_value_is_blamed_on_the_checkpoint(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys, val_size: object
) -> None:
    path = crafted(shared_run, tmp_path, data={"val_size": val_size})
    assert run_cli("validate", "--ckpt_path", str(path), "--data.data_dir", str(synthetic_dir)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the checkpoint's data.val_size"), err
    assert "--help" not in err
    assert len(err.splitlines()) == 1


def test_a_weights_shape_mismatch_says_what_does_not_fit(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys
) -> None:
    path = crafted(shared_run, tmp_path, weights={"linear.weight": torch.zeros(10, 783)})
    assert run_cli("test", "--ckpt_path", str(path), "--data.data_dir", str(synthetic_dir)) == 2
    err = capsys.readouterr().err.strip()
    assert "linear.weight is 10x783 in the checkpoint, 10x784 in the model" in err
    assert len(err.splitlines()) == 1


@pytest.mark.unit
def test_blame_rewords_only_the_options_that_came_from_the_checkpoint() -> None:
    settings = {"data.val_size": 70000}
    said = blame("val_size must be a count, got 70000", settings, "the checkpoint")
    assert said is not None
    assert said.startswith("the checkpoint's data.val_size (70000) is refused: must be a count")
    assert blame("--model.lr: expected float (see `train.py fit --help`)", settings, "the checkpoint") is None


def test_a_refused_value_you_gave_is_not_blamed_on_the_checkpoint(
    shared_run: Path, synthetic_dir: Path, run_cli, capsys
) -> None:
    ckpt = str(best_checkpoint(shared_run))
    assert (
        run_cli("validate", "--ckpt_path", ckpt, "--data.data_dir", str(synthetic_dir), "--data.val_size", "70000") == 2
    )
    err = capsys.readouterr().err.strip()
    assert "checkpoint" not in err, err
    assert "val_size must be a count" in err
