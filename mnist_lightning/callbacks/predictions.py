"""``python train.py predict`` writes ``predictions.csv``."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from mnist_lightning.fileio import atomic_write


class CSVPredictionWriter(BasePredictionWriter):
    """``python train.py predict`` writes ``predictions.csv`` (index, true label, predicted label, probability).

    The file goes into the predict run's log folder unless ``output`` names another. Under DDP every rank
    writes its share and rank 0 merges them in index order.

    Args:
        output: Where to write the CSV (default: ``<log_dir>/predictions.csv``).
    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output

    def _target(self, trainer: L.Trainer) -> Path:
        return (
            Path(self.output) if self.output else Path(trainer.log_dir or trainer.default_root_dir) / "predictions.csv"
        )

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        target = self._target(trainer)  # trainer.log_dir is a collective under DDP: every rank asks
        rows = [
            (int(i), int(t), int(p), float(probs[p]))
            for batch in predictions
            for i, t, p, probs in zip(batch["index"], batch["target"], batch["preds"], batch["probs"], strict=True)
        ]
        if trainer.world_size > 1:
            gathered: list = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        if not trainer.is_global_zero:
            return
        rows.sort()
        lines = ["index,true_label,predicted_label,probability"]
        lines += [f"{i},{t},{p},{prob:.6f}" for i, t, p, prob in rows]
        atomic_write(target, lambda stream: stream.write(("\n".join(lines) + "\n").encode()))
        print(f"Predictions for {len(rows):,} images written to {target}")
