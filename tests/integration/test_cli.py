"""The CLI in-process: fit, then validate/test/predict from a checkpoint alone; configs; errors; resume."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import FAST, best_checkpoint, run_folder
from lightning.pytorch import Trainer
from lightning.pytorch.profilers import SimpleProfiler

from mnist_lightning.cli.app import MNISTCLI
from mnist_lightning.cli.choices import NullProfiler
from mnist_lightning.commands import runner, train
from mnist_lightning.errors import CheckpointError
from mnist_lightning.models import LitLogReg, LitMLP


def test_fit_writes_logs_checkpoints_and_reports_the_best(shared_run: Path) -> None:
    trained = shared_run
    run = run_folder(trained)
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "config.yaml").is_file()
    assert yaml.safe_load((run / "hparams.yaml").read_text())["lr"] == 0.05
    best = best_checkpoint(trained)
    assert re.fullmatch(r"epoch0[01]-val_acc[01]\.\d{4}\.ckpt", best.name)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (1, 20)
    out = (trained / "stdout.txt").read_text()
    assert f"Best checkpoint: {best.relative_to(trained)}" in out.replace("./", "")
    assert "val/acc" in out


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_subcommands_run_from_a_checkpoint_and_the_data(
    shared_run: Path, synthetic_dir: Path, run_cli, subcommand: str, capsys
) -> None:
    """The checkpoint brings the model and the split; the data folder (outside this one) is the user's to give."""
    assert (
        run_cli(subcommand, "--ckpt_path", str(best_checkpoint(shared_run)), "--data.data_dir", str(synthetic_dir)) == 0
    )
    out = capsys.readouterr().out
    if subcommand != "predict":
        metric = "val/acc" if subcommand == "validate" else "test/acc"
        assert metric in out


def test_print_config_round_trips(run_cli, synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    args = ("--data.data_dir", str(synthetic_dir), "--model.lr", "0.07", "--model", "LitMLP")
    assert run_cli("fit", *args, "--print_config") == 0
    printed = capsys.readouterr().out
    (tmp_path / "config.yaml").write_text(printed)
    assert run_cli("fit", "--config", "config.yaml", "--print_config") == 0
    assert capsys.readouterr().out == printed
    config = yaml.safe_load(printed)
    assert config["model"]["class_path"] == "mnist_lightning.LitMLP"
    assert config["model"]["init_args"]["lr"] == 0.07


def test_model_can_be_swapped_for_the_mlp(run_cli, synthetic_dir: Path, tmp_path: Path) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), "--model", "LitMLP", *FAST) == 0
    model = LitMLP.load_from_checkpoint(best_checkpoint(tmp_path), weights_only=True)
    assert tuple(model.hparams.hidden_dims) == (512, 256)
    with pytest.raises(CheckpointError, match="holds a LitMLP, not a LitLogReg"):
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
        (("--ckpt_path", "."), "is a folder, not a checkpoint file"),
        (("--ckpt_path", "last"), "no checkpoint found"),
        (("--last_checkpoint.every_n_train_steps", "-1"), "every_n_train_steps must be >= 0"),
    ],
)
def test_bad_arguments_exit_2_with_one_short_message(run_cli, synthetic_dir: Path, args, message, capsys) -> None:
    """Exit 2: refused before anything ran, whether an option, a value or a checkpoint (commands/runner.py)."""
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 4


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--model.lr", "abc"), ["--model.lr", "expected float", "'abc'"]),
        (("--data.batch_size", "1.5"), ["--data.batch_size", "expected int", "'1.5'"]),
        (("--model.optimizer", "NotAnOptimizer"), ["--model.optimizer", "NotAnOptimizer", "SGD, Adam"]),
        (("--model.scheduler", "StepLR"), ["--model.scheduler", "step_size", "--model.scheduler.step_size"]),
        (("--model.scheduler", "ReduceLROnPlateau"), ["torch.optim.lr_scheduler.ReduceLROnPlateau", "ambiguity"]),
        (("--model", "LitFoo"), ["--model", "LitFoo", "LitLogReg, LitMLP, LitCNN"]),
        (("--model.optimizer", "SGD", "--model.optimizer.momentum", "-5"), ["--model.optimizer SGD", "momentum"]),
        (("--trainer.accelerator", "gpu"), ["--trainer.accelerator gpu", "this machine has none", "cpu"]),
        (("--trainer.accelerator", "mps"), ["--trainer.accelerator mps", "this machine has none"]),
        (("--torch_threads", "0"), ["--torch_threads must be >= 1", "got 0"]),
        (("--model.lr", "1e39"), ["lr must be a positive number a float32 can hold"]),
        (("--data.val_size", "abc"), ["--data.val_size", "int or float", "'abc'"]),
    ],
)
def test_bad_arguments_are_one_line_naming_option_value_and_what_is_accepted(
    run_cli, synthetic_dir: Path, capsys, monkeypatch: pytest.MonkeyPatch, args: tuple, expected: list[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for part in expected:
        assert part in err[0]


# --- resume, divergence, DDP -----------------------------------------------------------------------


def test_switching_the_model_class_gives_it_its_own_default_lr(run_cli, synthetic_dir: Path, tmp_path: Path) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), "--model", "LitMLP", *FAST) == 0
    hparams = torch.load(best_checkpoint(tmp_path), weights_only=True)["hyper_parameters"]
    assert hparams["lr"] == LitMLP.default_lr != LitLogReg.default_lr, "not LitLogReg's lr carried over"


def test_help_lists_every_subcommand_and_one_subcommand_parses_alone(capsys, monkeypatch) -> None:
    """Only the named subcommand's parser is built (start-up cost); help and typos still see all four."""
    monkeypatch.setattr(sys, "argv", ["train.py"])
    assert runner.run(train.main, ["--help"]) == 0
    top = capsys.readouterr().out
    assert all(name in top for name in ("fit", "validate", "test", "predict"))
    assert runner.run(train.main, ["test", "--help"]) == 0
    assert "--ckpt_path" in capsys.readouterr().out
    assert runner.run(train.main, ["fitt"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "fitt" in error
    assert "validate" in error


def test_test_and_predict_decode_only_the_test_files(shared_run: Path, synthetic_dir: Path, run_cli, monkeypatch):
    """The 47 MB training file is not read, decoded or split for evaluating the test set."""
    from mnist_lightning.data import datamodule

    decoded = []
    load_split = datamodule.load_split

    def recording(folder: Path, dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        decoded.append(split)
        return load_split(folder, dataset, split)

    monkeypatch.setattr(datamodule, "load_split", recording)
    args = ("--data.data_dir", str(synthetic_dir), "--ckpt_path", str(best_checkpoint(shared_run)))
    for subcommand in ("test", "predict"):
        assert run_cli(subcommand, *args) == 0
    assert decoded == ["test", "test"]
    assert run_cli("validate", *args) == 0
    assert decoded[2:] == ["train"]


def test_the_progress_bar_redraws_every_ten_steps_unless_one_is_configured(synthetic_dir: Path, tmp_path: Path):
    from lightning.pytorch.callbacks import ProgressBar

    def bars(*args: str) -> list[int]:
        cli = MNISTCLI(
            args=["--data.data_dir", str(synthetic_dir), "--trainer.default_root_dir", str(tmp_path), *args], run=False
        )
        return [c.refresh_rate for c in cli.trainer.callbacks if isinstance(c, ProgressBar)]

    assert bars() == [10]
    assert bars("--trainer.callbacks+=TQDMProgressBar", "--trainer.callbacks.refresh_rate", "1") == [1]
    assert bars("--trainer.enable_progress_bar", "false") == []


def test_no_profiler_costs_nothing_per_hook_and_a_chosen_one_is_kept(synthetic_dir: Path, tmp_path: Path) -> None:
    def trainer(*args: str) -> Trainer:
        folder = ("--trainer.default_root_dir", str(tmp_path))
        return MNISTCLI(args=["--data.data_dir", str(synthetic_dir), *folder, *args], run=False).trainer

    default = trainer().profiler
    assert type(default) is NullProfiler
    with default.profile("outer"), default.profile("inner"):  # one shared context, entered again and again
        pass
    assert type(trainer("--trainer.profiler", "simple").profiler) is SimpleProfiler


def test_a_refused_checkpoint_exits_2(shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys) -> None:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = "os.system"
    torch.save(checkpoint, tmp_path / "foreign.ckpt")
    assert run_cli("test", "--ckpt_path", "foreign.ckpt", "--data.data_dir", str(synthetic_dir)) == 2
    err = capsys.readouterr().err
    assert "'os.system'" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/accuracy"), "EarlyStopping"),
        (("--checkpoint.monitor", "val_acc"), "ModelCheckpoint"),
        (
            ("--model.scheduler", "lightning.pytorch.cli.ReduceLROnPlateau", "--model.scheduler.monitor", "val/los"),
            "--model.scheduler",
        ),
    ],
    ids=["EarlyStopping", "checkpoint", "ReduceLROnPlateau"],
)
def test_a_monitor_no_run_logs_is_refused_before_training(
    run_cli, synthetic_dir: Path, tmp_path: Path, capsys, args, said: str
) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, *args) == 2
    err = capsys.readouterr().err.strip()
    assert said in err
    assert "val/acc" in err, "says what is logged"
    assert len(err.splitlines()) == 1
    assert not list(tmp_path.rglob("*.ckpt")), "nothing was trained"


def test_the_monitorable_metrics_are_what_a_fit_logs(synthetic_dir: Path, tmp_path: Path) -> None:
    from mnist_lightning.cli.choices import FIT_METRICS

    args = ["fit", "--data.data_dir", str(synthetic_dir), *FAST, "--trainer.max_epochs", "1"]
    args += ["--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"]
    cli = MNISTCLI(args=args)
    logged = [key for key in cli.trainer.callback_metrics if not key.startswith("lr-")]  # LearningRateMonitor's
    assert sorted(logged) == sorted(FIT_METRICS)


def test_a_checkpoint_run_from_train_py_warns_nothing_spurious(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither LightningCLI's "args parameter is intended..." (the command line parsed from ``sys.argv``),
    ModelCheckpoint's "The dirpath has changed" (a test run restoring a training callback's state) nor the Trainer's
    "callbacks used to create the checkpoint need to be provided" (test leaves them out on purpose)."""
    import warnings

    monkeypatch.chdir(tmp_path)
    ckpt = str(best_checkpoint(shared_run))
    monkeypatch.setattr(sys, "argv", ["train.py", "test", "--ckpt_path", ckpt, "--data.data_dir", str(synthetic_dir)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert runner.run(train.main) == 0  # as train.py runs it: the command line from sys.argv
    said = [str(w.message) for w in caught]
    spurious = ("args parameter is intended", "dirpath has changed", "callbacks used to create the checkpoint")
    assert not [m for m in said if any(words in m for words in spurious)], said


def test_a_resume_reads_and_vets_its_checkpoint_once_and_builds_no_spare_model(
    trained: Path, synthetic_dir: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fit --ckpt_path last``: one read of ``last.ckpt`` (the Trainer is handed it), one vetting, and the
    only model built is the one that trains (no model built from the checkpoint just to try the weights)."""
    from mnist_lightning.checkpoint import VettedModel
    from mnist_lightning.cli import resume

    loads: list[str] = []
    vetted: list[object] = []
    load, vet_model = torch.load, resume.vet_model

    def counting_load(path: object, *args: object, **kwargs: object) -> object:
        loads.append(Path(str(path)).name)
        return load(path, *args, **kwargs)

    def counting_vet(hparams: object, allowed: object) -> VettedModel:
        vetted.append(hparams)
        return vet_model(hparams, allowed)

    def no_spare_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built from the checkpoint besides the one that trains")

    monkeypatch.setattr(torch, "load", counting_load)
    monkeypatch.setattr(resume, "vet_model", counting_vet)
    monkeypatch.setattr(VettedModel, "build", no_spare_model)
    assert run_cli("fit", "--ckpt_path", "last", "--data.data_dir", str(synthetic_dir)) == 0
    assert [name for name in loads if name.endswith(".ckpt")] == ["last.ckpt"]
    assert len(vetted) == 1
