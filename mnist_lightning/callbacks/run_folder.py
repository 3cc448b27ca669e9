"""The run's own folder: a run that fails before it saved anything leaves no empty ``version_N`` behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

KEEPSAKES = ("*.ckpt", "checkpoints/*.ckpt", "predictions.csv")
"""What makes a failed run's folder worth keeping."""


class RunFolder(Callback):
    """Removes the log folder of a run that failed before it wrote a checkpoint or predictions.

    Lightning creates ``version_N`` (config, hparams, event file) as soon as a run starts; when it then
    fails (bad data, divergence at the first step) the empty folder becomes the "latest run" that
    ``--ckpt_path last`` and TensorBoard show. Runs that saved something keep everything.
    """

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        folder = self.folder(trainer)
        if trainer.is_global_zero and folder is not None and folder.is_dir() and not self._has_keepsakes(folder):
            shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def folder(trainer: L.Trainer) -> Path | None:
        """The run's own ``version_N`` folder (no collective call: this may run while another rank failed)."""
        logger = trainer.logger
        log_dir = getattr(logger, "log_dir", None) if logger is not None else None
        return Path(log_dir) if log_dir else None

    @staticmethod
    def _has_keepsakes(folder: Path) -> bool:
        return any(next(folder.glob(pattern), None) is not None for pattern in KEEPSAKES)
