"""What a run shows in TensorBoard: scalars without Lightning's ``epoch``, pictures of the model and its mistakes,
and HPARAMS."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary
from torchmetrics.classification import MulticlassConfusionMatrix

from mnist_lightning.models import LitClassifier
from mnist_lightning.pictures import render_confusion_matrix, render_filters, render_mistakes


class TensorBoardLoggerWithoutEpoch(TensorBoardLogger):
    """Lightning's ``TensorBoardLogger`` (the CLI's default logger) without the ``epoch`` scalar Lightning adds to
    every batch of logged metrics: TensorBoard orders its cards by name, and an ``epoch`` staircase would open the
    SCALARS tab before the accuracy and loss. CSV logs keep their ``epoch`` column."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics({name: value for name, value in metrics.items() if name != "epoch"}, step)


def _tensorboard(trainer: L.Trainer) -> SummaryWriter | None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class TensorBoardPictures(Callback):
    """What the model learned, as pictures in TensorBoard's IMAGES tab.

    - ``confusion_matrix``: counts of true against predicted classes;
    - ``filters``: the linear model's ten weight templates, or the MLP's strongest first-layer filters, or the
      CNN's strongest first convolution kernels;
    - ``mistakes``: the most confidently misclassified digits with their true and predicted labels.

    Drawn for the final validation of ``fit``, at the end of ``test``, and every ``every_n_epochs`` during
    ``fit`` when set. Each picture is switchable (``--pictures.mistakes false``; ``--pictures null`` for none).
    Without a TensorBoard logger nothing is drawn. Under DDP the confusion matrix counts all ranks; the
    mistakes come from rank 0's share of the data.

    Args:
        confusion_matrix: Draw the confusion matrix.
        filters: Draw the first layer's weights.
        mistakes: Draw the most confident mistakes.
        num_mistakes: How many mistakes to show.
        every_n_epochs: Also draw after every n-th validation of ``fit`` (0: only after the last one, as
            drawing costs a share of a short epoch).
    """

    def __init__(
        self,
        confusion_matrix: bool = True,
        filters: bool = True,
        mistakes: bool = True,
        num_mistakes: int = 16,
        every_n_epochs: int = 0,
    ) -> None:
        self.confusion_matrix = confusion_matrix
        self.filters = filters
        self.mistakes = mistakes
        self.num_mistakes = num_mistakes
        self.every_n_epochs = every_n_epochs
        self._matrix: MulticlassConfusionMatrix | None = None
        self._worst: tuple[torch.Tensor, ...] | None = None
        self._undrawn: dict[str, Callable[[], Image.Image]] | None = None

    def _start(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        self._matrix, self._worst = None, None
        if self.confusion_matrix and not trainer.sanity_checking:
            self._matrix = MulticlassConfusionMatrix(pl_module.num_classes, validate_args=False).to(pl_module.device)

    def _batch_end(self, trainer: L.Trainer, logits: torch.Tensor, batch: Sequence[torch.Tensor]) -> None:
        if trainer.sanity_checking or logits is None:
            return
        images, labels = batch[0], batch[1]
        if self._matrix is not None:
            self._matrix.update(logits, labels)
        if self.mistakes:
            confidence, pred = logits.softmax(1).max(1)
            wrong = pred != labels
            candidates = (confidence[wrong], images[wrong], labels[wrong], pred[wrong])
            if self._worst is not None:
                candidates = tuple(torch.cat([old, new]) for old, new in zip(self._worst, candidates, strict=True))
            keep = candidates[0].topk(min(self.num_mistakes, len(candidates[0]))).indices
            self._worst = tuple(t[keep] for t in candidates)

    def _pictures(self, trainer: L.Trainer, pl_module: LitClassifier, stage: str) -> dict:
        """What to draw, as cheap CPU snapshots; the drawing itself happens only when it is logged."""
        matrix = self._matrix.compute().cpu() if self._matrix is not None else None  # collective under DDP
        when = f"epoch {trainer.current_epoch}" if stage == "val" else "test set"
        pictures: dict[str, Callable[[], Image.Image]] = {}
        if matrix is not None:
            title = f"Confusion matrix, {stage} ({when})"
            pictures["confusion_matrix"] = functools.partial(render_confusion_matrix, matrix, title)
        if self.filters:
            weights, labels = filters_to_draw(pl_module)
            pictures["filters"] = functools.partial(render_filters, weights.cpu().clone(), labels)
        if self.mistakes and self._worst is not None:
            confidence, images, true, pred = (t.cpu() for t in self._worst)
            pictures["most_confident_mistakes"] = functools.partial(render_mistakes, images, true, pred, confidence)
        return pictures

    def _draw(self, trainer: L.Trainer, stage: str, pictures: dict[str, Callable[[], Image.Image]]) -> None:
        writer = _tensorboard(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        for name, draw in pictures.items():
            image = np.asarray(draw().convert("RGB"))
            writer.add_image(f"{stage}/{name}", image, trainer.global_step, dataformats="HWC")

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        self._start(trainer, pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        self._start(trainer, pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch_end(trainer, outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch_end(trainer, outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        if trainer.sanity_checking:
            return
        pictures = self._pictures(trainer, pl_module, "val")
        every = self.every_n_epochs
        if trainer.state.fn == "fit" and not (every > 0 and (trainer.current_epoch + 1) % every == 0):
            self._undrawn = pictures  # drawn at the end of fit unless a later validation replaces it
            return
        self._undrawn = None
        self._draw(trainer, "val", pictures)

    def on_fit_end(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        if self._undrawn is not None:
            self._draw(trainer, "val", self._undrawn)
            self._undrawn = None

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        self._draw(trainer, "test", self._pictures(trainer, pl_module, "test"))


def filters_to_draw(pl_module: LitClassifier, count: int = 16) -> tuple[torch.Tensor, list[str]]:
    """What a picture of the model should show: one template per class (a linear model), else the ``count``
    first-layer filters (or convolution kernels) with the largest weights."""
    weights = pl_module.input_filters()
    if pl_module.filters_per_class:
        return weights, [f"class {k}" for k in range(len(weights))]
    strongest = weights.flatten(1).norm(dim=1).topk(min(count, len(weights))).indices
    return weights[strongest], [f"unit {k}" for k in strongest.tolist()]


class HParamsMetrics(Callback):
    """Registers ``hp/best_val_acc`` (fit) or ``hp/test_acc`` (test) with the run's settings for TensorBoard's
    HPARAMS tab, and keeps them up to date (instead of Lightning's stuck ``hp_metric`` placeholder).

    The tab lists what tells runs apart: the model class, lr, optimizer and scheduler with their arguments,
    the other model arguments and the data settings that change results.
    """

    DATA_KEYS = ("dataset", "batch_size", "val_size", "seed", "normalize", "augment", "extra_dirs", "extra_repeats")

    def __init__(self) -> None:
        self.best: float | None = None

    def state_dict(self) -> dict[str, Any]:
        """The best accuracy so far travels in checkpoints: a resumed run must not report a lower best."""
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")

    @classmethod
    def comparable(cls, pl_module: LitClassifier, datamodule: L.LightningDataModule | None) -> dict[str, Any]:
        """Plain scalar settings worth comparing across runs."""
        params: dict[str, Any] = {"model": type(pl_module).__name__}
        for key, value in pl_module.hparams.items():
            if key.startswith("_"):
                continue
            if isinstance(value, dict) and "class_path" in value:
                params[key] = value["class_path"].rsplit(".", 1)[-1]
                params.update({f"{key}.{k}": v for k, v in (value.get("init_args") or {}).items()})
            else:
                params[key] = "none" if value is None else value
        if datamodule is not None:
            params.update({f"data.{k}": datamodule.hparams[k] for k in cls.DATA_KEYS if k in datamodule.hparams})
        return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in params.items()}

    def _register(self, trainer: L.Trainer, pl_module: LitClassifier, metric: str) -> None:
        writer = _tensorboard(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        params = self.comparable(pl_module, trainer.datamodule)
        file_writer = writer._get_file_writer()  # as Lightning's TensorBoardLogger does; keeps hparams.yaml clean
        for summary in hparams_summary(params, {metric: float("nan")}):
            file_writer.add_summary(summary)

    def on_fit_start(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        self._register(trainer, pl_module, "hp/best_val_acc")

    def on_test_start(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        self._register(trainer, pl_module, "hp/test_acc")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        acc = pl_module.val_acc.compute().item()  # synced; the module logs the same value
        self.best = acc if self.best is None else max(self.best, acc)
        pl_module.log("hp/best_val_acc", self.best)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: LitClassifier) -> None:
        pl_module.log("hp/test_acc", pl_module.test_acc.compute().item())
