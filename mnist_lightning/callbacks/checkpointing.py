"""``last.ckpt`` that is always the latest training state."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.types import STEP_OUTPUT

from mnist_lightning.errors import ConfigError


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
            raise ConfigError(f"every_n_train_steps must be >= 0 (0: only at epoch ends), got {every_n_train_steps}")
        self.every_n_train_steps = every_n_train_steps
        self.filename = filename

    def _folder(self, trainer: L.Trainer) -> Path:
        best = trainer.checkpoint_callback
        if best is not None and best.dirpath:
            return Path(best.dirpath)
        return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != "fit":
            return
        trainer.save_checkpoint(self._folder(trainer) / self.filename, weights_only=False)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: STEP_OUTPUT, batch: object, batch_idx: int
    ) -> None:
        if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)
