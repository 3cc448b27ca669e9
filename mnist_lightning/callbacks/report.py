"""Per-class accuracy and F1 at the end of ``test``: logged, and printed as a small table."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassStatScores

from mnist_lightning.models import LitClassifier


class ClassReport(Callback):
    """Per-class accuracy, per-class and macro F1 and the support of each class, from torchmetrics.

    The four metrics share one set of per-class counts (a torchmetrics compute group), so a test batch
    costs one update; they are synced across DDP ranks by torchmetrics.
    """

    def __init__(self, print_table: bool = True) -> None:
        self.print_table = print_table
        self.metrics: MetricCollection | None = None

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        n = pl_module.num_classes
        self.metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(n, average=None, validate_args=False),
                "f1": MulticlassF1Score(n, average=None, validate_args=False),
                "f1_macro": MulticlassF1Score(n, average="macro", validate_args=False),
                "counts": MulticlassStatScores(n, average=None, validate_args=False),
            },
            compute_groups=True,
        ).to(pl_module.device)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: LitClassifier, outputs: Any, batch: Any, batch_idx: int, dataloader_idx=0
    ) -> None:
        if outputs is not None:
            self.metrics.update(outputs, batch[1])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        result = self.metrics.compute()
        accuracy, f1, support = result["acc"], result["f1"], result["counts"][:, 4]
        metrics = {f"test/acc_class_{k}": accuracy[k] for k in range(len(accuracy))}
        metrics["test/f1_macro"] = result["f1_macro"]
        pl_module.log_dict(metrics)
        if self.print_table and trainer.is_global_zero:
            names = getattr(trainer.datamodule, "class_names", None) or [str(k) for k in range(len(accuracy))]
            lines = [f"{'class':<14} {'accuracy':>9} {'F1':>7} {'images':>7}"]
            lines += [
                f"{names[k][:14]:<14} {accuracy[k]:>9.2%} {f1[k]:>7.3f} {int(support[k]):>7}"
                for k in range(len(accuracy))
            ]
            lines.append(f"{'macro F1':<14} {'':>9} {result['f1_macro']:>7.3f} {int(support.sum()):>7}")
            print("\n".join(lines))
