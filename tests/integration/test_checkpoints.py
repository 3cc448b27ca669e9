"""Checkpoints through the CLI: best and last found, damaged files passed over, crafted and malicious
checkpoints refused through every way in, checkpoints from before the model owned its normalization."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import best_checkpoint, run_folder

from mnist_lightning import LitLogReg, LitMLP, load_model
from mnist_lightning.commands import predict
from mnist_lightning.commands.runner import run
from mnist_lightning.errors import CheckpointError
from mnist_lightning.models import CosineToZeroLR

# --- best / last ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["best", "last"])
def test_ckpt_path_best_and_last_find_the_latest_run(
    trained: Path, synthetic_dir: Path, run_cli, which: str, caplog
) -> None:
    assert run_cli("test", "--ckpt_path", which, "--data.data_dir", str(synthetic_dir)) == 0
    expected = best_checkpoint(trained) if which == "best" else run_folder(trained) / "checkpoints" / "last.ckpt"
    assert f"--ckpt_path {which}: {expected.relative_to(trained)}" in caplog.text


@pytest.mark.parametrize("subcommand", ["fit", "test"])
def test_an_empty_ckpt_path_is_one_line_not_a_traceback(run_cli, synthetic_dir: Path, capsys, subcommand: str) -> None:
    assert run_cli(subcommand, "--data.data_dir", str(synthetic_dir), "--ckpt_path", "") == 2
    assert capsys.readouterr().err == "error: --ckpt_path got an empty name: give best, last or a .ckpt file\n"


def test_ckpt_path_last_without_any_run_fails_loudly(run_cli, synthetic_dir: Path, capsys) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), "--ckpt_path", "last") == 2
    assert "no checkpoint found" in capsys.readouterr().err


def test_a_damaged_last_checkpoint_falls_back_to_the_newest_intact_one(
    trained: Path, synthetic_dir: Path, run_cli, caplog
) -> None:
    checkpoints = run_folder(trained) / "checkpoints"
    (checkpoints / "last.ckpt").write_bytes((checkpoints / "last.ckpt").read_bytes()[:5000])
    best = best_checkpoint(trained)
    assert best.name.startswith("epoch00"), "the fallback resumes from epoch 0 and trains epoch 1 again"
    assert run_cli("fit", "--ckpt_path", "last", "--data.data_dir", str(synthetic_dir)) == 0
    assert f"--ckpt_path last: {best.relative_to(trained)}" in caplog.text
    assert "skipped" in caplog.text
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 1


def test_only_damaged_checkpoints_fail_loudly(trained: Path, run_cli, capsys) -> None:
    for path in (run_folder(trained) / "checkpoints").glob("*.ckpt"):
        path.write_bytes(b"not a checkpoint")
    assert run_cli("fit", "--ckpt_path", "last") == 2
    assert "no intact checkpoint" in capsys.readouterr().err


# --- crafted and malicious checkpoints, through every way in ---------------------------------------------


def refuses_via_cli(path: Path, run_cli, capsys) -> str:
    assert run_cli("test", "--ckpt_path", str(path)) == 2
    return capsys.readouterr().err


def refuses_via_load_model(path: Path, run_cli, capsys) -> str:
    with pytest.raises(CheckpointError) as error:
        load_model(path)
    return str(error.value)


def refuses_via_predict_command(path: Path, run_cli, capsys) -> str:
    assert run(predict.main, ["--ckpt", str(path), str(path)]) == 2
    return capsys.readouterr().err


ENTRY_POINTS: dict[str, Callable[..., str]] = {
    "train.py": refuses_via_cli,
    "load_model": refuses_via_load_model,
    "predict": refuses_via_predict_command,
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ({"input_dim": 400_000_000}, "parameters, more than"),
        ({"_class_path": "subprocess.Popen"}, "names model class 'subprocess.Popen'; only ["),
        ({"optimizer": {"class_path": "os.system", "init_args": {}}}, "is not a torch optimizer"),
        ({"_instantiator": "os.system"}, "instantiator 'os.system'"),
    ],
    ids=["huge_layer", "foreign_class", "foreign_optimizer", "foreign_instantiator"],
)
def test_crafted_hyperparameters_are_refused_before_anything_is_built(
    shared_run: Path, run_cli, capsys, tmp_path: Path, tamper: dict, message: str, entry: str
) -> None:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    checkpoint["hyper_parameters"].update(tamper)
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    assert message in ENTRY_POINTS[entry](crafted, run_cli, capsys)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_checkpoint_carrying_code_is_refused_and_never_runs(tmp_path: Path, run_cli, capsys, entry: str) -> None:
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": Payload()}}, evil)
    assert "could run arbitrary code" in ENTRY_POINTS[entry](evil, run_cli, capsys)
    assert not marker.exists()


def test_weights_only_false_is_refused(shared_run: Path, run_cli, capsys) -> None:
    assert run_cli("test", "--ckpt_path", str(best_checkpoint(shared_run)), "--weights_only", "false") == 2
    assert "--weights_only false is refused" in capsys.readouterr().err


def test_checkpoint_paths_that_are_folders_or_other_projects_checkpoints_are_one_line(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys
) -> None:
    foreign_keys = torch.load(best_checkpoint(shared_run), weights_only=True)
    foreign_keys["state_dict"] = {"encoder.weight": torch.zeros(3, 3)}
    torch.save(foreign_keys, tmp_path / "other_keys.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"_class_path": "other.Net"}}, tmp_path / "a")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "no_hparams.ckpt")
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "bare_state_dict.pt")
    cases = {
        tmp_path: "is a folder",
        tmp_path / "other_keys.ckpt": "weights do not fit LitLogReg",
        tmp_path / "a": "names model class 'other.Net'",
        tmp_path / "no_hparams.ckpt": "holds no model hyperparameters",
        tmp_path / "bare_state_dict.pt": "not a Lightning checkpoint",
    }
    for path, message in cases.items():
        assert run_cli("test", "--ckpt_path", str(path), "--data.data_dir", str(synthetic_dir)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, (path, err)
        assert message in err[0], (path, err)
        assert run(predict.main, ["--ckpt", str(path), str(path)]) == 2
        assert message in capsys.readouterr().err


def test_a_model_class_other_than_the_checkpoints_is_refused(shared_run: Path, run_cli, capsys) -> None:
    assert run_cli("test", "--ckpt_path", str(best_checkpoint(shared_run)), "--model", "LitMLP") == 2
    assert "--model LitMLP does not match the checkpoint, which holds a LitLogReg" in capsys.readouterr().err


def test_load_from_checkpoint_refuses_another_class_and_unsafe_options(shared_run: Path) -> None:
    path = best_checkpoint(shared_run)
    with pytest.raises(CheckpointError, match="holds a LitLogReg, not a LitMLP"):
        LitMLP.load_from_checkpoint(path)
    with pytest.raises(CheckpointError, match="weights_only=False"):
        LitLogReg.load_from_checkpoint(path, weights_only=False)
    model = LitLogReg.load_from_checkpoint(path, lr=0.5)
    assert model.hparams.lr == 0.5
    assert model.scheduler_factory.func is CosineToZeroLR, "built from the allowlist, as a partial of the class"


# --- checkpoints from before the model owned its normalization --------------------------------------------


def test_a_checkpoint_from_before_the_model_owned_its_normalization_still_loads(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys
) -> None:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    mean, std = (checkpoint["state_dict"].pop(key).item() for key in ("input_mean", "input_std"))
    checkpoint["MNISTDataModule"].update(mean=mean, std=std)  # where version 0.1 kept them
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    model = load_model(old)
    assert (model.input_mean.item(), model.input_std.item()) == (mean, std)
    assert run_cli("test", "--ckpt_path", str(old), "--data.data_dir", str(synthetic_dir)) == 0
    del checkpoint["MNISTDataModule"]
    torch.save(checkpoint, old)
    with pytest.raises(CheckpointError, match=r"weights do not fit LitLogReg \(missing \['input_mean', 'input_std'\]"):
        load_model(old)
