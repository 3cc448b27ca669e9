"""``last.ckpt`` that is always the latest training state, saved last and on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, ModelCheckpoint
from lightning.pytorch.utilities.types import STEP_OUTPUT

from mnist_lightning.errors import ConfigError, TrainingInterruptedError


class LastCheckpoint(Checkpoint):
    """Keeps ``last.ckpt`` the latest training state: rewritten after every epoch and every N steps.

    Lightning's ``ModelCheckpoint(save_last=True)`` refreshes ``last.ckpt`` only when the monitored metric
    improves, and cannot combine step and epoch triggers; a run killed late would resume from long ago.

    It is a ``Checkpoint`` so that Lightning calls it after every other callback at an epoch's end (it sorts
    checkpoint callbacks last and calls EarlyStopping and checkpoints in a second pass): ``last.ckpt`` then
    holds the best checkpoint and EarlyStopping's counters as they are after that epoch, not one epoch behind.

    SIGTERM (Lightning's ``trainer.received_sigterm``) and SIGINT stop training at the next batch's end, with
    ``last.ckpt`` saved there, and end the run with :class:`TrainingInterruptedError` (a non-zero exit); a second SIGINT
    interrupts at once.

    Args:
        every_n_train_steps: Also save after every N optimizer steps (0: only at epoch ends).
        filename: Written next to the best checkpoint, in ``<log_dir>/checkpoints/``.
    """

    def __init__(self, every_n_train_steps: int = 500, filename: str = "last.ckpt") -> None:
        if every_n_train_steps < 0:
            raise ConfigError(f"every_n_train_steps must be >= 0 (0: only at epoch ends), got {every_n_train_steps}")
        self.every_n_train_steps = every_n_train_steps
        self.filename = filename
        self._sigint = False
        self._previous_sigint: Any = None

    def _folder(self, trainer: L.Trainer) -> Path:
        best = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
        if best is not None and best.dirpath:
            return Path(best.dirpath)
        return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != "fit":
            return
        trainer.save_checkpoint(self._folder(trainer) / self.filename, weights_only=False)

    def _stop_if_signalled(self, trainer: L.Trainer, saved: bool) -> None:
        signum = signal.SIGINT if self._sigint else signal.SIGTERM if trainer.received_sigterm else None
        if signum is None:
            return
        if not saved:
            self._save(trainer)
        raise TrainingInterruptedError(
            f"stopped by {signum.name} at step {trainer.global_step} (epoch {trainer.current_epoch}); "
            f"{self._folder(trainer) / self.filename} is saved: continue with `fit --ckpt_path last`",
            exit_code=128 + signum,
        )

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._sigint = False
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._sigint:  # asked twice: stop now
            raise KeyboardInterrupt
        self._sigint = True

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_sigint()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: STEP_OUTPUT, batch: object, batch_idx: int
    ) -> None:
        saved = bool(self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0)
        if saved:
            self._save(trainer)
        self._stop_if_signalled(trainer, saved)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)
        self._stop_if_signalled(trainer, saved=True)


class RNGState(Callback):
    """Saves torch's global random state in checkpoints and restores it when training resumes.

    Lightning restores weights, optimizer, schedulers and loops but not the global generator, which draws
    the dropout masks: without it a resumed MLP with dropout trains on other masks than an uninterrupted run.
    The state is applied at ``on_train_start``, after the sanity check, just before the next training batch.
    """

    def __init__(self) -> None:
        self._pending: torch.Tensor | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"torch": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("torch")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None:
            torch.set_rng_state(self._pending)
            self._pending = None
