"""Callbacks for what Lightning lacks; each is switchable from the CLI/YAML."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch.optim import Optimizer

from mnist_lightning.errors import TrainingDivergedError


class LastCheckpoint(Callback):
    """Keeps ``last.ckpt`` the latest training state: rewritten after every epoch and every N steps.

    Lightning's ``ModelCheckpoint(save_last=True)`` refreshes ``last.ckpt`` only when the monitored metric
    improves, and cannot combine step and epoch triggers; a run killed late would resume from long ago.

    Args:
        every_n_train_steps: Also save after every N optimizer steps (0: only at epoch ends).
        filename: Written next to the best checkpoint, in ``<log_dir>/checkpoints/``.
    """

    def __init__(self, every_n_train_steps: int = 500, filename: str = "last.ckpt") -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.every_n_train_steps = every_n_train_steps
        self.filename = filename
        self.last_path: Path | None = None

    def _folder(self, trainer: L.Trainer) -> Path:
        best = trainer.checkpoint_callback
        if best is not None and best.dirpath:
            return Path(best.dirpath)
        return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != "fit":
            return
        self.last_path = self._folder(trainer) / self.filename
        trainer.save_checkpoint(self.last_path, weights_only=False)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: STEP_OUTPUT, batch: object, batch_idx: int
    ) -> None:
        if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)


class DivergenceGuard(Callback):
    """Stops training at the first NaN or infinite gradient, before it reaches the weights.

    Without it Lightning trains on with NaN weights (torchmetrics even drops the NaN losses from the logged
    mean) and saves them as the "best" checkpoint. The check costs one scalar sync per step.
    """

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads or torch.stack([g.isfinite().all() for g in grads]).all():
            return
        lr = pl_module.hparams.get("lr")
        hint = f"try a smaller learning rate than --model.lr {lr:g}, e.g. {lr / 10:g}" if lr else "lower the lr"
        raise TrainingDivergedError(
            f"Training diverged at epoch {trainer.current_epoch}, step {trainer.global_step}: the loss and its "
            f"gradients became NaN or infinite. Stopped before the weights were touched; {hint}."
        )
