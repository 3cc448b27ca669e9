"""A callback for benchmarks: per-epoch training time and test accuracy, written as JSON lines.

Used as ``python train.py fit --trainer.callbacks+=probe.EpochProbe --trainer.callbacks.out FILE`` with
``bench/`` on ``PYTHONPATH``. The test evaluation it adds is timed and reported so it can be subtracted.
"""

from __future__ import annotations

import json
import time

import lightning as L
import torch


class EpochProbe(L.Callback):
    """After each training epoch, append ``{epoch, train_s, wall, eval_s, test_acc}`` to ``out``.

    With ``evaluate=False`` only the clock is read (``test_acc`` is null): cheap enough for timed runs.
    """

    def __init__(self, out: str, evaluate: bool = True) -> None:
        self.out = out
        self.evaluate = evaluate
        self._started = 0.0
        self._train_s = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()
        self._train_s = 0.0

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._started:
            self._train_s = time.perf_counter() - self._started

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        ended = time.time()
        train_s = self._train_s or time.perf_counter() - self._started
        evaluated = time.perf_counter()
        record = {"epoch": trainer.current_epoch, "train_s": train_s, "wall": ended, "eval_s": 0.0, "test_acc": None}
        if self.evaluate:
            record.update(test_acc=self._test_accuracy(trainer, pl_module), eval_s=time.perf_counter() - evaluated)
        with open(self.out, "a") as stream:
            stream.write(json.dumps(record) + "\n")

    @staticmethod
    def _test_accuracy(trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        correct = total = 0
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            for images, labels in trainer.datamodule.test_dataloader():
                correct += (pl_module(images.to(pl_module.device)).argmax(1) == labels.to(pl_module.device)).sum()
                total += len(labels)
        pl_module.train(was_training)
        return int(correct) / total
