"""``--model.init_from``: a new run starting from a trained model's vetted weights, with its own optimizer and
schedule; another class or architecture and unsafe files are refused in one line; resuming ignores it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
import pytest
import torch
from helpers import FAST, best_checkpoint, quiet_trainer, run_folder
from lightning.pytorch.cli import LRSchedulerCallable

from mnist_lightning import LitClassifier, LitCNN, LitEnsemble, LitLogReg, LitMLP
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.errors import CheckpointError, ConfigError
from mnist_lightning.models import ALLOWLIST, CosineToZeroLR
from mnist_lightning.models.classifier import OptimizerFactory
from mnist_lightning.models.warm_start import initial_weights


def save(model: L.LightningModule, path: Path, **hparams: object) -> Path:
    """A checkpoint as Lightning writes one: the weights and the model's hyperparameters."""
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": {**model.hparams, **hparams}}, path)
    return path


class Snapshot(L.Callback):
    """The model's state when training starts: after ``setup``, ``on_fit_start`` and the sanity check."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.state = {key: value.clone() for key, value in pl_module.state_dict().items()}
        self.total_steps = trainer.lr_scheduler_configs[0].scheduler.total_steps
        self.start = (trainer.current_epoch, trainer.global_step)


def test_another_model_class_is_refused_in_one_line(tmp_path: Path) -> None:
    path = save(LitLogReg(), tmp_path / "logreg.ckpt")
    with pytest.raises(
        CheckpointError, match=r"holds a LitLogReg, but this run trains a LitMLP: pass --model LitLogReg"
    ):
        initial_weights(str(path), LitMLP(hidden_dims=(8,)), ALLOWLIST)


def test_another_architecture_is_refused_naming_what_differs(tmp_path: Path) -> None:
    path = save(LitCNN(channels=(4, 8), hidden_dim=16), tmp_path / "cnn.ckpt")
    with pytest.raises(
        CheckpointError, match=r"another LitCNN architecture \(channels \[4, 8\] in the checkpoint, \[4, 6\] here\)"
    ):
        initial_weights(str(path), LitCNN(channels=(4, 6), hidden_dim=16), ALLOWLIST)
    same = LitCNN(channels=(4, 8), hidden_dim=16, dropout=0.5, lr=1e-4, label_smoothing=0.1)  # training settings
    assert initial_weights(str(path), same, ALLOWLIST).keys() == same.state_dict().keys()


def test_an_ensemble_is_refused_naming_what_to_pass_instead(tmp_path: Path) -> None:
    """An ensemble is never trained: the message must not suggest --model LitEnsemble, which train.py refuses."""
    ensemble = LitEnsemble.of([LitCNN(channels=(4, 8), hidden_dim=8), LitCNN(channels=(4, 8), hidden_dim=8)])
    path = save(ensemble, tmp_path / "ensemble.ckpt")
    with pytest.raises(CheckpointError, match=r"holds an ensemble, .*pass the checkpoint of one of its members") as err:
        initial_weights(str(path), LitCNN(channels=(4, 8), hidden_dim=8), ALLOWLIST)
    assert "--model LitEnsemble" not in str(err.value)


def test_unsafe_or_damaged_files_are_refused_by_the_vetting(tmp_path: Path) -> None:
    model = LitLogReg()
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "x": Path("code")}, pickled)
    with pytest.raises(CheckpointError, match=r"--model.init_from .*pickled.ckpt: Refused to load .*pickled objects"):
        initial_weights(str(pickled), model, ALLOWLIST)
    foreign = save(model, tmp_path / "foreign.ckpt", _class_path="os.system")
    with pytest.raises(CheckpointError, match=r"names model class 'os.system'"):
        initial_weights(str(foreign), model, ALLOWLIST)
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"junk.ckpt: .*damaged or not a PyTorch checkpoint"):
        initial_weights(str(tmp_path / "junk.ckpt"), model, ALLOWLIST)
    with pytest.raises(CheckpointError, match=r"missing.ckpt: no such file"):
        initial_weights(str(tmp_path / "missing.ckpt"), model, ALLOWLIST)


def test_init_from_is_a_stored_hyperparameter() -> None:
    assert LitLogReg(init_from="base.ckpt").hparams.init_from == "base.ckpt"
    assert LitLogReg(init_from=Path("base.ckpt")).hparams.init_from == "base.ckpt"
    with pytest.raises(ConfigError, match="init_from must be the path of a checkpoint file or null, got 3"):
        LitLogReg(init_from=3)


def test_training_starts_from_the_checkpoints_weights_with_a_new_schedule(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    base = best_checkpoint(shared_run)
    saved = torch.load(base, weights_only=True)["state_dict"]
    snapshot = Snapshot()
    trainer = quiet_trainer(tmp_path, max_epochs=1, callbacks=[snapshot], enable_checkpointing=False)
    data = MNISTDataModule(data_dir=synthetic_dir, val_size=200, batch_size=100, normalize=False)
    trainer.fit(LitLogReg(init_from=str(base)), datamodule=data)
    assert snapshot.state.keys() == saved.keys()
    for key, tensor in saved.items():  # the statistics too: those the weights were trained with, not normalize=False's
        assert torch.equal(snapshot.state[key], tensor), key
    assert snapshot.total_steps == 10, "the new run's schedule: one epoch of 10 steps"
    assert snapshot.start == (0, 0)


def test_a_missing_init_from_is_refused_before_the_run_folder_is_made(
    run_cli, synthetic_dir: Path, tmp_path: Path, capsys
) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, "--model.init_from", "gone.ckpt") == 2
    assert "--model.init_from gone.ckpt: no such file" in capsys.readouterr().err
    assert not (tmp_path / "lightning_logs").exists()


def test_resuming_ignores_init_from_and_refuses_another_one(
    run_cli, shared_run: Path, synthetic_dir: Path, tmp_path: Path, capsys
) -> None:
    base = tmp_path / "base.ckpt"
    base.write_bytes(best_checkpoint(shared_run).read_bytes())
    options = ("--data.data_dir", str(synthetic_dir), *FAST, "--model.lr", "0.01", "--model.init_from", str(base))
    assert run_cli("fit", *options) == 0
    assert (run_folder(tmp_path) / "config.yaml").read_text().count(f"init_from: {base}") == 1
    base.unlink()  # a resumed run takes every weight from its checkpoint: the starting point may be gone
    assert run_cli("fit", *options, "--ckpt_path", "last") == 0
    assert run_cli("fit", *options[:-1], str(tmp_path / "other.ckpt"), "--ckpt_path", "last") == 2
    err = capsys.readouterr().err
    assert "a resumed run continues from its checkpoint's weights" in err
    assert "drop --model.init_from" in err


def test_the_learning_rate_finder_is_refused_with_init_from(
    run_cli, shared_run: Path, synthetic_dir: Path, capsys
) -> None:
    base = str(best_checkpoint(shared_run))
    finder = ("--trainer.callbacks+=LearningRateFinder",)
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, "--model.init_from", base, *finder) == 2
    assert "--model.init_from with the learning-rate finder" in capsys.readouterr().err


class WrittenBefore(LitClassifier):
    """A model class written before ``init_from`` existed: its constructor ends at ``scheduler_interval``."""

    def __init__(
        self,
        num_classes: int = 10,
        lr: float | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = CosineToZeroLR,
        scheduler_interval: Literal["step", "epoch"] = "step",
    ) -> None:
        super().__init__(num_classes, lr, optimizer, scheduler, scheduler_interval)
        self.net = torch.nn.Linear(784, num_classes)


def test_a_model_class_without_init_from_still_works() -> None:
    model = WrittenBefore()
    assert "init_from" not in model.hparams
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
