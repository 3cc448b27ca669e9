"""Where a training epoch's time goes: the PyTorch profiler over epochs of the default fit.

    python bench/profile_epoch.py [--data-dir ../shared/data]

Profiles epochs 2-3 of the default configuration inside Lightning and prints the operator table: the
arithmetic of logistic regression (matmuls, the batch gather, Adam) against everything else.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import lightning as L
import torch
from torch.profiler import ProfilerActivity, profile

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.models import LitLogReg

REPO = Path(__file__).resolve().parents[1]


class ProfileEpochs(L.Callback):
    """Profiles the training of the epochs in ``epochs`` (validation excluded)."""

    def __init__(self, epochs: tuple[int, ...]) -> None:
        self.epochs = epochs
        self.profiler: profile | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epochs[0]:
            self.profiler = profile(activities=[ProfilerActivity.CPU])
            self.profiler.__enter__()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.profiler is not None and trainer.current_epoch == self.epochs[-1]:
            self.profiler.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    probe = ProfileEpochs((2, 3))
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(
            max_epochs=4,
            default_root_dir=root,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[probe],
        )
        trainer.fit(LitLogReg(), MNISTDataModule(data_dir=args.data_dir, download=False))
    print(probe.profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))


if __name__ == "__main__":
    main()
