"""A run is a run: the real best checkpoint, callback state and settings that survive resume, one writer per
run folder, a folder per run whatever the logger, rerunnable configs. (Signals and bitwise-exact resume:
``tests/system/test_train_processes.py``.)"""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
import torch
import yaml
from helpers import FAST, run_folder

from mnist_lightning.checkpoint import resolve_checkpoint
from mnist_lightning.cli.run_folders import FOLLOW_ROOT
from mnist_lightning.runlock import LOCK_NAME

SLOW_LEARNER = ("--model.lr", "0.0003")
"""val/acc still rises over three epochs on the synthetic data: the best is the last epoch's."""


def last_state(root: Path, version: int = 0) -> dict:
    return torch.load(run_folder(root, version) / "checkpoints" / "last.ckpt", weights_only=True)


def callback_state(checkpoint: dict, prefix: str) -> dict:
    (state,) = (value for key, value in checkpoint["callbacks"].items() if key.startswith(prefix))
    return state


def test_last_checkpoint_records_the_best_of_its_own_epoch(
    run_cli, synthetic_dir: Path, tmp_path: Path, capsys
) -> None:
    top3 = ("--checkpoint.save_top_k", "3", "--trainer.max_epochs", "3")
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, *SLOW_LEARNER, *top3) == 0
    printed = capsys.readouterr().out.split("Best checkpoint: ")[1].split(" ")[0]
    last = last_state(tmp_path)
    best = callback_state(last, "ModelCheckpoint")
    assert len(best["best_k_models"]) == 3, "the third epoch's checkpoint is in the record"
    assert Path(best["best_model_path"]).name == Path(printed).name
    assert Path(best["best_model_path"]).name.startswith("epoch02-")
    found, _ = resolve_checkpoint("best", tmp_path / "lightning_logs")
    assert found.name == Path(printed).name
    assert callback_state(last, "HParamsMetrics")["best"] == pytest.approx(best["best_model_score"].item())


def test_early_stopping_state_in_last_checkpoint_is_current(run_cli, synthetic_dir: Path, tmp_path: Path) -> None:
    stop = ("--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/acc")
    stop += ("--trainer.callbacks.mode", "max", "--trainer.callbacks.min_delta", "1.0")
    stop += ("--trainer.callbacks.patience", "5")
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, *stop) == 0
    assert callback_state(last_state(tmp_path), "EarlyStopping")["wait_count"] == 1  # epoch 0 sets the best


def test_lr_finder_lr_is_the_one_trained_with_and_not_searched_again(
    run_cli, synthetic_dir: Path, tmp_path: Path, caplog
) -> None:
    finder = ("--trainer.callbacks+=LearningRateFinder", "--trainer.callbacks.num_training_steps", "15")
    args = ("--data.data_dir", str(synthetic_dir), *FAST, *finder)
    assert run_cli("fit", *args) == 0
    last = last_state(tmp_path)
    found = last["hyper_parameters"]["lr"]
    assert found != 2e-2, "the finder changed the learning rate"
    assert last["optimizer_states"][0]["param_groups"][0]["initial_lr"] == found
    assert run_cli("fit", *args, "--ckpt_path", "last") == 0
    assert "not run again on resume" in caplog.text
    assert caplog.text.count("Learning rate set to") == 1
    last = last_state(tmp_path)
    assert last["global_step"] == 20
    assert last["hyper_parameters"]["lr"] == last["optimizer_states"][0]["param_groups"][0]["initial_lr"] == found


def test_a_second_writer_of_a_run_is_refused(trained: Path, run_cli, capsys) -> None:
    lock = (run_folder(trained) / LOCK_NAME).open("a")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the process training it holds it
    try:
        assert run_cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "3") == 2
    finally:
        lock.close()
    err = capsys.readouterr().err
    assert "is being trained by" in err
    assert len(err.strip().splitlines()) == 1
    assert last_state(trained)["global_step"] == 20, "nothing was written"


def test_without_a_logger_every_run_gets_its_own_folder(run_cli, synthetic_dir: Path, tmp_path: Path, caplog) -> None:
    args = ("--data.data_dir", str(synthetic_dir), *FAST, "--trainer.logger", "false", "--model.scheduler", "null")
    assert run_cli("fit", *args, "--model.lr", "0.01") == 0
    assert run_cli("fit", *args, "--model.lr", "0.02") == 0
    for version, lr in ((0, 0.01), (1, 0.02)):
        assert last_state(tmp_path, version)["hyper_parameters"]["lr"] == lr
        assert (run_folder(tmp_path, version) / "config.yaml").is_file()
    assert not (tmp_path / "checkpoints").exists()
    assert run_cli("fit", *args, "--ckpt_path", "last", "--trainer.max_epochs", "3") == 0
    assert last_state(tmp_path, 1)["global_step"] == 30, "the latest run continued in its own folder"
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0", "version_1"]


def test_a_run_config_reruns_under_another_root_and_carries_no_resume(
    run_cli, synthetic_dir: Path, tmp_path: Path
) -> None:
    """A resume that names the run's ``config.yaml`` rewrites it (a resume that names none leaves it as it was)."""
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, "--model.scheduler", "null") == 0
    config_file = run_folder(tmp_path) / "config.yaml"
    resume = ("--config", str(config_file), "--trainer.max_epochs", "3", "--ckpt_path", "last")
    assert run_cli("fit", *resume) == 0
    config = yaml.safe_load(config_file.read_text())
    assert config["ckpt_path"] is None
    assert config["trainer"]["logger"]["init_args"]["version"] is None
    assert config["trainer"]["logger"]["init_args"]["save_dir"] == FOLLOW_ROOT
    assert "${" not in config_file.read_text(), "nothing in it looks like an interpolation"
    other = tmp_path / "other"
    assert run_cli("fit", "--config", str(config_file), "--trainer.default_root_dir", str(other)) == 0
    assert last_state(other)["global_step"] == 30, "a new run, under the root given"
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]


# --- robustness: killed, terminated or interrupted at a step, then resumed, equals an uninterrupted run -------


def test_resume_continues_with_the_checkpoint_settings(run_cli, synthetic_dir: Path, tmp_path: Path, caplog) -> None:
    """The batch size and the run's length come from the checkpoint as values; its config.yaml is not read."""
    run = ("--data.data_dir", str(synthetic_dir), "--data.val_size", "200", "--data.batch_size", "64")
    clip = ("--trainer.gradient_clip_val", "5", "--trainer.gradient_clip_algorithm", "value")
    assert run_cli("fit", *run, *clip, "--trainer.max_epochs", "2", "--model.scheduler", "null") == 0
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), "--ckpt_path", "last") == 0
    last = last_state(tmp_path)
    assert last["datamodule_hyper_parameters"]["batch_size"] == 64
    assert callback_state(last, "RunSettings") == {
        **{"max_epochs": 2, "max_steps": -1, "accumulate_grad_batches": 1, "precision": "32-true"},
        **{"gradient_clip_val": 5, "gradient_clip_algorithm": "value"},
    }, "kept as plain values, and brought back on resume"
    assert (last["epoch"], last["global_step"]) == (1, 2 * 16), "batch 64 and 2 epochs, as the run was started"
    assert (
        run_cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "3", "--data.data_dir", str(synthetic_dir)) == 0
    )
    assert "trainer.max_epochs 2 -> 3" in caplog.text, "a change that alters the result is said"
    assert last_state(tmp_path)["global_step"] == 3 * 16


def test_stretching_a_schedule_that_already_ended_is_refused(
    trained: Path, synthetic_dir: Path, run_cli, capsys
) -> None:
    assert (
        run_cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "4", "--data.data_dir", str(synthetic_dir)) == 2
    )
    err = capsys.readouterr().err
    assert "trainer.max_epochs 2 -> 4" in err
    assert "train a new run" in err
    assert last_state(trained)["global_step"] == 20
