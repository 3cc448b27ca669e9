"""An epoch's training loss and accuracy, summed on the device: a metric's update per step costs several times
more, and a host sync per step stalls an accelerator."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchmetrics import MeanMetric


@dataclass
class TrainingSums:
    """An epoch's training loss and correct predictions, summed on the device without a host sync per step."""

    loss: torch.Tensor
    correct: torch.Tensor
    count: torch.Tensor

    @classmethod
    def zeros(cls, device: torch.device) -> TrainingSums:
        return cls(*(torch.zeros((), device=device, dtype=kind) for kind in (torch.float32, torch.long, torch.long)))

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, digits: torch.Tensor | None) -> None:
        """Add a batch: its mean loss (weighted by its digits) and how many of its digits are predicted right.
        ``digits`` marks the images that are digits when the batch holds some that are not (``NEGATIVE_LABEL``:
        no right answer to count); ``None``: all are."""
        right = logits.argmax(dim=1) == labels
        if digits is None:
            self.loss.add_(loss, alpha=len(labels))
            self.correct.add_(right.sum())
            self.count.add_(len(labels))
            return
        count = digits.sum()
        self.loss.add_(loss * count)
        self.correct.add_((right & digits).sum())
        self.count.add_(count)

    def update(self, loss_mean: MeanMetric, acc_mean: MeanMetric) -> None:
        """Hand the epoch's means, weighted by its digits, to the metrics that sync them across processes."""
        count = int(self.count)
        if count:
            loss_mean.update(self.loss / count, weight=count)
            acc_mean.update(self.correct / count, weight=count)
