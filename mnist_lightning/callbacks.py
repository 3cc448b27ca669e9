"""Callbacks for what Lightning lacks: an always-current last.ckpt, a divergence guard, and pictures and
per-class metrics in TensorBoard. Each is switchable from the CLI/YAML."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.types import STEP_OUTPUT
from PIL import Image, ImageDraw, ImageFont
from torch.optim import Optimizer
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary
from torchmetrics.classification import MulticlassConfusionMatrix

from mnist_lightning.checkpoints import atomic_write
from mnist_lightning.errors import ConfigError, TrainingDivergedError


class LastCheckpoint(Callback):
    """Keeps ``last.ckpt`` the latest training state: rewritten after every epoch and every N steps.

    Lightning's ``ModelCheckpoint(save_last=True)`` refreshes ``last.ckpt`` only when the monitored metric
    improves, and cannot combine step and epoch triggers; a run killed late would resume from long ago.

    Args:
        every_n_train_steps: Also save after every N optimizer steps (0: only at epoch ends).
        filename: Written next to the best checkpoint, in ``<log_dir>/checkpoints/``.
    """

    def __init__(self, every_n_train_steps: int = 500, filename: str = "last.ckpt") -> None:
        if every_n_train_steps < 0:
            raise ConfigError(f"every_n_train_steps must be >= 0 (0: only at epoch ends), got {every_n_train_steps}")
        self.every_n_train_steps = every_n_train_steps
        self.filename = filename

    def _folder(self, trainer: L.Trainer) -> Path:
        best = trainer.checkpoint_callback
        if best is not None and best.dirpath:
            return Path(best.dirpath)
        return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != "fit":
            return
        trainer.save_checkpoint(self._folder(trainer) / self.filename, weights_only=False)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: STEP_OUTPUT, batch: object, batch_idx: int
    ) -> None:
        if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)


class DivergenceGuard(Callback):
    """Stops training at the first NaN or infinite gradient, before it reaches the weights.

    Without it Lightning trains on with NaN weights (torchmetrics even drops the NaN losses from the logged
    mean) and saves them as the "best" checkpoint. The check costs one scalar sync per step.
    """

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads or torch.stack([g.isfinite().all() for g in grads]).all():
            return
        lr = pl_module.hparams.get("lr")
        hint = f"try a smaller learning rate than --model.lr {lr:g}, e.g. {lr / 10:g}" if lr else "lower the lr"
        raise TrainingDivergedError(
            f"Training diverged at epoch {trainer.current_epoch}, step {trainer.global_step}: the loss and its "
            f"gradients became NaN or infinite. Stopped before the weights were touched; {hint}."
        )


@functools.cache
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_confusion_matrix(matrix: torch.Tensor, title: str, cell: int = 36) -> Image.Image:
    """A confusion matrix as a heat map with the count in every cell (rows: true class, columns: predicted)."""
    n = matrix.shape[0]
    counts = matrix.long().cpu()
    share = counts.float() / counts.sum(1, keepdim=True).clamp(min=1)
    left, top = 52, 58
    image = Image.new("RGB", (left + n * cell + 12, top + n * cell + 12), "white")
    draw = ImageDraw.Draw(image)
    draw.text((6, 6), title, fill="black", font=_font(15))
    draw.text((left + n * cell // 2, 26), "predicted", fill="black", font=_font(14), anchor="ma")
    draw.text((4, top + n * cell // 2), "true", fill="black", font=_font(14), anchor="lm")
    for i in range(n):
        draw.text((left + i * cell + cell // 2, top - 4), str(i), fill="black", font=_font(14), anchor="mb")
        draw.text((left - 8, top + i * cell + cell // 2), str(i), fill="black", font=_font(14), anchor="rm")
        for j in range(n):
            strength = share[i, j].item() if i == j else min(1.0, share[i, j].item() * 8)
            color = (
                (int(255 - 200 * strength), int(255 - 120 * strength), 255)
                if i == j
                else (
                    255,
                    int(255 - 180 * strength),
                    int(255 - 180 * strength),
                )
            )
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=color, outline=(210, 210, 210))
            text_color = "white" if i == j and strength > 0.6 else "black"
            center = (box[0] + cell // 2, box[1] + cell // 2)
            draw.text(center, str(counts[i, j].item()), fill=text_color, font=_font(14), anchor="mm")
    return image


def render_filters(weights: torch.Tensor, labels: list[str], scale: int = 3, columns: int = 5) -> Image.Image:
    """28x28 weight maps in a grid, red for positive and blue for negative weights, each with its label."""
    side = 28 * scale
    rows = (len(weights) + columns - 1) // columns
    image = Image.new("RGB", (columns * (side + 10) + 10, rows * (side + 30) + 10), "white")
    draw = ImageDraw.Draw(image)
    for k, (weight, label) in enumerate(zip(weights, labels, strict=True)):
        w = weight.detach().float().cpu().reshape(28, 28)
        w = (w / w.abs().max().clamp(min=1e-12)).numpy()
        rgb = np.stack([1 + np.minimum(w, 0), 1 - np.abs(w), 1 - np.maximum(w, 0)], axis=-1)
        tile = Image.fromarray((rgb * 255).astype(np.uint8)).resize((side, side), Image.NEAREST)
        x, y = 10 + (k % columns) * (side + 10), 10 + (k // columns) * (side + 30)
        draw.text((x + side // 2, y), label, fill="black", font=_font(16), anchor="ma")
        image.paste(tile, (x, y + 20))
    return image


def render_mistakes(
    images: torch.Tensor,
    true: torch.Tensor,
    pred: torch.Tensor,
    confidence: torch.Tensor,
    scale: int = 3,
    columns: int = 4,
) -> Image.Image:
    """Digits in a grid, each captioned with its true and predicted label and the model's confidence."""
    side, cell = 28 * scale, 28 * scale + 30
    rows = max(1, (len(images) + columns - 1) // columns)
    image = Image.new("RGB", (columns * cell + 8, rows * (side + 42) + 8), "white")
    draw = ImageDraw.Draw(image)
    if len(images) == 0:
        draw.text((image.width // 2, side // 2), "no misclassified digits", fill="black", font=_font(16), anchor="mm")
    for k in range(len(images)):
        pixels = (images[k].reshape(28, 28).clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
        tile = Image.fromarray(pixels).resize((side, side), Image.NEAREST)
        x, y = 8 + (k % columns) * cell + (cell - 8 - side) // 2, 8 + (k // columns) * (side + 42)
        image.paste(tile, (x, y))
        caption = f"true {true[k].item()}, said {pred[k].item()}"
        draw.text((x + side // 2, y + side + 2), caption, fill="black", font=_font(14), anchor="ma")
        draw.text(
            (x + side // 2, y + side + 19),
            f"{confidence[k].item():.0%} sure",
            fill=(170, 0, 0),
            font=_font(14),
            anchor="ma",
        )
    return image


def _tensorboard(trainer: L.Trainer) -> SummaryWriter | None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class TensorBoardPictures(Callback):
    """What the model learned, as pictures in TensorBoard's IMAGES tab.

    - ``confusion_matrix``: counts of true against predicted classes;
    - ``filters``: the linear model's ten weight templates, or the MLP's strongest first-layer filters;
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
        every_n_epochs: Also draw after every n-th validation of ``fit`` (0: only after the last one). Each
            drawing costs about 0.1 s, a tenth of an epoch of the default run.
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

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._matrix, self._worst = None, None
        if self.confusion_matrix and not trainer.sanity_checking:
            num_classes = pl_module.hparams.get("num_classes", 10)
            self._matrix = MulticlassConfusionMatrix(num_classes, validate_args=False).to(pl_module.device)

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

    def _pictures(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> dict:
        """What to draw, as cheap CPU snapshots; the drawing itself happens only when it is logged."""
        matrix = self._matrix.compute().cpu() if self._matrix is not None else None  # collective under DDP
        when = f"epoch {trainer.current_epoch}" if stage == "val" else "test set"
        pictures: dict[str, Callable[[], Image.Image]] = {}
        if matrix is not None:
            title = f"Confusion matrix, {stage} ({when})"
            pictures["confusion_matrix"] = functools.partial(render_confusion_matrix, matrix, title)
        if self.filters:
            weights, labels = first_layer_filters(pl_module)
            pictures["filters"] = functools.partial(render_filters, weights.cpu().clone(), labels)
        if self.mistakes and self._worst is not None:
            confidence, images, true, pred = (t.cpu() for t in self._worst)
            mean, std = _normalization(trainer)
            pictures["most_confident_mistakes"] = functools.partial(
                render_mistakes, images * std + mean, true, pred, confidence
            )
        return pictures

    def _draw(self, trainer: L.Trainer, stage: str, pictures: dict[str, Callable[[], Image.Image]]) -> None:
        writer = _tensorboard(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        for name, draw in pictures.items():
            image = np.asarray(draw().convert("RGB"))
            writer.add_image(f"{stage}/{name}", image, trainer.global_step, dataformats="HWC")

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch_end(trainer, outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch_end(trainer, outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        pictures = self._pictures(trainer, pl_module, "val")
        every = self.every_n_epochs
        if trainer.state.fn == "fit" and not (every > 0 and (trainer.current_epoch + 1) % every == 0):
            self._undrawn = pictures  # drawn at the end of fit unless a later validation replaces it
            return
        self._undrawn = None
        self._draw(trainer, "val", pictures)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._undrawn is not None:
            self._draw(trainer, "val", self._undrawn)
            self._undrawn = None

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw(trainer, "test", self._pictures(trainer, pl_module, "test"))


def _normalization(trainer: L.Trainer) -> tuple[float, float]:
    datamodule = trainer.datamodule
    return getattr(datamodule, "mean", 0.0), getattr(datamodule, "std", 1.0)


def first_layer_filters(pl_module: L.LightningModule, count: int = 16) -> tuple[torch.Tensor, list[str]]:
    """The weights a picture of the model should show: all ten templates of a linear model, else the
    ``count`` first-layer units with the largest weights."""
    first = next(m for m in pl_module.modules() if isinstance(m, torch.nn.Linear))
    weight = first.weight.detach()
    if weight.shape[0] <= 10:
        return weight, [f"class {k}" for k in range(weight.shape[0])]
    strongest = weight.norm(dim=1).topk(min(count, weight.shape[0])).indices
    return weight[strongest], [f"unit {k}" for k in strongest.tolist()]


class ClassReport(Callback):
    """Per-class accuracy and macro F1 at the end of ``test``: logged, and printed as a small table."""

    def __init__(self, print_table: bool = True) -> None:
        self.print_table = print_table
        self._matrix: MulticlassConfusionMatrix | None = None

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        num_classes = pl_module.hparams.get("num_classes", 10)
        self._matrix = MulticlassConfusionMatrix(num_classes, validate_args=False).to(pl_module.device)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if outputs is not None:
            self._matrix.update(outputs, batch[1])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        matrix = self._matrix.compute().double()  # synced across ranks
        support = matrix.sum(1)
        recall = matrix.diag() / support.clamp(min=1)
        precision = matrix.diag() / matrix.sum(0).clamp(min=1)
        f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
        metrics = {f"test/acc_class_{k}": recall[k] for k in range(len(recall))}
        metrics["test/f1_macro"] = f1.mean()
        pl_module.log_dict({k: v.float() for k, v in metrics.items()})
        if self.print_table and trainer.is_global_zero:
            names = getattr(trainer.datamodule, "class_names", None) or [str(k) for k in range(len(recall))]
            lines = [f"{'class':<14} {'accuracy':>9} {'F1':>7} {'images':>7}"]
            lines += [
                f"{names[k][:14]:<14} {recall[k]:>9.2%} {f1[k]:>7.3f} {int(support[k]):>7}" for k in range(len(recall))
            ]
            lines.append(f"{'macro F1':<14} {'':>9} {f1.mean():>7.3f} {int(support.sum()):>7}")
            print("\n".join(lines))


class HParamsMetrics(Callback):
    """Registers ``hp/best_val_acc`` (fit) or ``hp/test_acc`` (test) with the run's settings for TensorBoard's
    HPARAMS tab, and keeps them up to date (instead of Lightning's stuck ``hp_metric`` placeholder).

    The tab lists what tells runs apart: the model class, lr, optimizer and scheduler with their arguments,
    the other model arguments and the data settings that change results.
    """

    DATA_KEYS = ("dataset", "batch_size", "val_size", "seed", "normalize", "augment")

    def __init__(self) -> None:
        self.best: float | None = None

    @classmethod
    def comparable(cls, pl_module: L.LightningModule, datamodule: L.LightningDataModule | None) -> dict[str, Any]:
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

    def _register(self, trainer: L.Trainer, pl_module: L.LightningModule, metric: str) -> None:
        writer = _tensorboard(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        params = self.comparable(pl_module, trainer.datamodule)
        file_writer = writer._get_file_writer()  # as Lightning's TensorBoardLogger does; keeps hparams.yaml clean
        for summary in hparams_summary(params, {metric: float("nan")}):
            file_writer.add_summary(summary)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._register(trainer, pl_module, "hp/best_val_acc")

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._register(trainer, pl_module, "hp/test_acc")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        acc = pl_module.val_acc.compute().item()  # synced; the module logs the same value
        self.best = acc if self.best is None else max(self.best, acc)
        pl_module.log("hp/best_val_acc", self.best)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("hp/test_acc", pl_module.test_acc.compute().item())


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
