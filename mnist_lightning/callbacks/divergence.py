"""Stop at the first non-finite gradient, before it reaches the weights."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.optim import Optimizer

from mnist_lightning.errors import TrainingDivergedError


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
