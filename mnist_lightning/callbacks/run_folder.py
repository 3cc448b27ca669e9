"""The run's own folder: its ``config.yaml``, and no empty ``version_N`` left behind by a run that failed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import SaveConfigCallback

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


class SaveRunConfig(SaveConfigCallback):
    """LightningCLI's ``config.yaml``, written without validating the config a second time.

    The parser checked this very config when it parsed it; ``SaveConfigCallback`` checks it again while
    writing, a noticeable share of a short run. Same file, same place
    (``trainer.log_dir``), rank 0 only, overwritten on resume.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        log_dir = trainer.log_dir  # a collective call under DDP: every rank makes it
        if trainer.is_global_zero and log_dir is not None:
            os.makedirs(log_dir, exist_ok=True)
            path = os.path.join(log_dir, self.config_filename)
            self.parser.save(self.config, path, skip_none=False, skip_check=True, overwrite=True, multifile=False)
            self.save_config(trainer, pl_module, stage)
        self.already_saved = True
