"""Divergence: a run that diverges, with any optimizer or precision, ends in one line naming the cause and leaves
nothing; DivergenceGuard checks cheaply each step, defers its reads on accelerators and never saves non-finite weights.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from helpers import FAST, quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from mnist_lightning import LitLogReg, MNISTDataModule
from mnist_lightning.callbacks import DivergenceGuard
from mnist_lightning.errors import TrainingDivergedError


class Poison(L.Callback):
    """Makes one weight NaN at step ``step``: before its forward pass, or right after its update."""

    def __init__(self, step: int, after_update: bool = False) -> None:
        self.step = step
        self.after_update = after_update

    def _poison(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        if step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        if not self.after_update:
            self._poison(trainer, pl_module, trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        if self.after_update:
            self._poison(trainer, pl_module, trainer.global_step - 1)


def fit_until_diverged(root: Path, data_dir: Path, guard: DivergenceGuard, poison: Poison) -> tuple[str, L.Trainer]:
    """Ten steps an epoch; returns the error's message and the trainer where it stopped."""
    trainer = quiet_trainer(
        root, max_epochs=2, enable_checkpointing=True, callbacks=[guard, poison, ModelCheckpoint(root / "ckpt")]
    )
    with pytest.raises(TrainingDivergedError) as error:
        trainer.fit(LitLogReg(), MNISTDataModule(data_dir, val_size=200, batch_size=100, download=False))
    assert list(root.rglob("*.ckpt")) == [], "nothing non-finite is saved"
    return str(error.value), trainer


def test_each_step_is_checked_on_the_cpu(synthetic_dir: Path, tmp_path: Path) -> None:
    message, trainer = fit_until_diverged(tmp_path, synthetic_dir, DivergenceGuard(), Poison(5))
    assert "the update of step 4 made the weights NaN or infinite" in message
    assert trainer.global_step == 5, "stopped before the update of the step that saw it"


def test_deferred_checks_name_the_first_failing_step(synthetic_dir: Path, tmp_path: Path) -> None:
    message, trainer = fit_until_diverged(tmp_path, synthetic_dir, DivergenceGuard(check_every_n_steps=4), Poison(5))
    assert "Training diverged in epoch 0: the gradients or the weights became NaN or infinite at step 5." in message
    assert trainer.global_step == 7, "read after steps 3, 7, 11, ...: stopped at the first read after step 5"


@pytest.mark.parametrize("every", [1, 50])
def test_the_last_update_before_a_validation_is_checked(synthetic_dir: Path, tmp_path: Path, every: int) -> None:
    message, trainer = fit_until_diverged(
        tmp_path, synthetic_dir, DivergenceGuard(check_every_n_steps=every), Poison(9, after_update=True)
    )
    assert "the update of step 9 made the weights NaN or infinite" in message
    assert trainer.global_step == 10


def test_huge_finite_values_whose_sum_overflows_are_no_divergence() -> None:
    model = LitLogReg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for param in model.parameters():
        param.data.fill_(3e38)
        param.grad = torch.full_like(param, 3e38)
    trainer = SimpleNamespace(global_step=3, current_epoch=0)
    DivergenceGuard().on_before_optimizer_step(trainer, model, optimizer)  # no error
    model.net.weight.grad[0, 0] = float("inf")
    with pytest.raises(TrainingDivergedError, match="gradients became NaN or infinite at step 3"):
        DivergenceGuard().on_before_optimizer_step(trainer, model, optimizer)


def test_check_every_n_steps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="check_every_n_steps must be >= 1"):
        DivergenceGuard(check_every_n_steps=0)


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (("--model.optimizer", "SGD", "--model.lr", "1e37"), "smaller learning rate than --model.lr 1e+37"),
        (("--trainer.precision", "16-true"), "eps 1e-08 rounds to 0"),
    ],
    ids=["huge-lr", "fp16-adam-eps"],
)
def test_divergence_is_one_line_naming_the_cause_and_leaves_nothing(
    run_cli, synthetic_dir: Path, tmp_path: Path, capsys, args: tuple, cause: str
) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, *args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "Training diverged" in err[0]
    assert cause in err[0]
    assert list(tmp_path.rglob("*.ckpt")) == []
    assert list((tmp_path / "lightning_logs").iterdir()) == [], "no empty version_N is left behind"


def test_an_overflow_inside_the_optimizer_step_ends_in_one_line(run_cli, synthetic_dir: Path, capsys) -> None:
    """1e38 passes the lr check (float32 holds it), but Adam's first step divides it by 0.1: torch raises."""
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, "--model.lr", "1e38") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Training diverged: Adam's step overflowed"), err
    assert "--model.lr 1e+38" in err
    assert len(err.splitlines()) == 1
