"""Callbacks for what Lightning lacks, one concern per module; each is switchable from the CLI/YAML.

- ``checkpointing``: ``LastCheckpoint``, a ``last.ckpt`` rewritten every epoch, every N steps and on a signal;
  ``RNGState``, torch's global random state in checkpoints;
- ``divergence``: ``DivergenceGuard``, stop at the first non-finite gradient;
- ``tensorboard``: ``TensorBoardPictures``, ``HParamsMetrics`` and the default logger,
  ``TensorBoardLoggerWithoutEpoch``;
- ``report``: ``ClassReport``, per-class accuracy and F1 after ``test``;
- ``predictions``: ``CSVPredictionWriter``, ``predictions.csv`` for ``train.py predict``;
- ``run_folder``: ``RunFolder``, no empty ``version_N`` left by a failed run; ``SaveRunConfig``, its ``config.yaml``.
"""

from mnist_lightning.callbacks.checkpointing import LastCheckpoint, RNGState
from mnist_lightning.callbacks.divergence import DivergenceGuard
from mnist_lightning.callbacks.predictions import CSVPredictionWriter
from mnist_lightning.callbacks.report import ClassReport
from mnist_lightning.callbacks.run_folder import RunFolder, SaveRunConfig
from mnist_lightning.callbacks.tensorboard import (
    HParamsMetrics,
    TensorBoardLoggerWithoutEpoch,
    TensorBoardPictures,
)

__all__ = [
    "CSVPredictionWriter",
    "ClassReport",
    "DivergenceGuard",
    "HParamsMetrics",
    "LastCheckpoint",
    "RNGState",
    "RunFolder",
    "SaveRunConfig",
    "TensorBoardLoggerWithoutEpoch",
    "TensorBoardPictures",
]
