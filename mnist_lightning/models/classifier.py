"""The base of every model: input standardization, loss, metrics, logging, optimizer handling and safe
checkpoint loading; subclasses (one file each) hold layers and check their own hyperparameters.

Every model takes pixels in [0, 1] (what ``transforms.ToTensor()`` gives) and standardizes them itself with
the ``input_mean``/``input_std`` buffers, which are set from the training split before ``fit`` and travel in
the state_dict: a loaded model needs nothing else to be fed. Hyperparameters are always stored as plain values
(numbers, strings, ``{"class_path": ...}`` dicts) so that a checkpoint loads with
``torch.load(weights_only=True)`` and ``load_from_checkpoint`` rebuilds the model without any config, whether
it was made by the CLI or in a script.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import LearningRateFinder
from lightning.pytorch.cli import LRSchedulerCallable
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

from mnist_lightning.checkpoint import INSTANTIATOR, Allowlist, build_model, read_checkpoint
from mnist_lightning.data.negatives import NEGATIVE_LABEL
from mnist_lightning.errors import CheckpointError, ConfigError
from mnist_lightning.models.calibration import CALIBRATION_BINS, SEARCH_RANGE, fit_temperature
from mnist_lightning.models.checks import is_int, require
from mnist_lightning.models.schedulers import CosineToZeroLR, OptimizerFactory, check_factories, wants_run_length
from mnist_lightning.models.training_sums import TrainingSums
from mnist_lightning.models.warm_start import TRAINING_ARGUMENTS, initial_weights
from mnist_lightning.specs import as_yaml, import_path, plain_spec

STORED_BOUNDS = {
    "temperature": (*SEARCH_RANGE, f"a fitted temperature of {SEARCH_RANGE[0]}-{SEARCH_RANGE[1]}"),
    "input_std": (0.01, 1.0, "a pixel standard deviation of (0.01, 1]"),
    "input_mean": (0.0, 1.0, "a pixel mean of [0, 1]"),
}
"""What a checkpoint's scalar buffers may hold (NaN fails every comparison, so it is refused too)."""


@runtime_checkable
class InputStatistics(Protocol):
    """What a data module offers a model before ``fit``: the mean and std of its training pixels."""

    input_mean: float
    input_std: float


class LitClassifier(L.LightningModule):
    """Shared logic: input normalization, cross-entropy, one accuracy/loss metric per stage, epoch-level logging.

    Subclasses call ``super().__init__``, then build ``self.net``: any module mapping standardized images of
    shape ``(N, *input_shape)`` to logits (flat ``(784,)`` vectors by default).

    Args:
        num_classes: Number of classes.
        lr: Learning rate handed to the optimizer; ``None`` (the default) is the model class's ``default_lr``.
            (LightningCLI keeps a same-named argument when ``--model`` switches class, so a number here would
            carry LitLogReg's 0.02 into ``--model LitMLP``.)
        optimizer: Optimizer class (configure its other arguments in the config, e.g. ``weight_decay``).
        scheduler: Learning-rate scheduler, or ``None`` for a constant learning rate.
        scheduler_interval: Step the scheduler after every ``step`` (batch) or every ``epoch``.
        init_from: A checkpoint whose weights ``fit`` starts from (fine-tuning): a new run, with its own optimizer
            and learning-rate schedule, not a resumed one (see :mod:`mnist_lightning.models.warm_start`). Ignored
            when ``fit`` resumes a checkpoint (``ckpt_path``), which brings every weight itself.
    """

    input_shape: tuple[int, ...] = (-1,)
    """The shape of one image as the layers take it: flat vectors unless a subclass says otherwise."""
    cpu_threads: int | None = 1
    """CPU threads ``--torch_threads auto`` gives this model (``None``: every core the process may use). A linear
    model's small matmuls gain little from a second thread and lose much when a core is busy (README, Speed)."""
    default_lr: float = 3e-3
    """The learning rate ``lr=None`` stands for: what this model trains well with under the default Adam."""
    label_smoothing: float = 0.0
    """Label smoothing of the training loss (validation and test losses are plain cross-entropy); a subclass that
    offers it as an argument sets it per instance."""
    outlier_weight: float = 0.0
    """Weight of the outlier-exposure loss on training images labelled ``NEGATIVE_LABEL`` (not digits: see
    ``--data.negatives``), whose target is the uniform distribution."""
    trains_on_negatives: bool = False
    """Whether the training batches hold such images (set in ``setup`` from the data module): without them each
    step computes the plain loss alone."""
    filters_per_class: bool = False
    """Whether :meth:`input_filters` gives one template per class (a linear model) rather than hidden units:
    the TensorBoard picture then shows them all, labelled by class."""
    checkpoint_allowlist: ClassVar[Allowlist] = Allowlist()
    """What ``load_from_checkpoint`` accepts. This base class cannot import its subclasses, so
    ``mnist_lightning.models`` (where ``MODEL_CLASSES`` lists them) hands it the allowlist made from that list."""

    def __init__(
        self,
        num_classes: int = 10,
        lr: float | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = CosineToZeroLR,
        scheduler_interval: Literal["step", "epoch"] = "step",
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Stored in plain form (class paths and arguments), whoever built the model: a checkpoint is read without
        # importing anything it names (mnist_lightning.checkpoint). The CLI does not add LightningCLI's own record
        # of the config (load_from_checkpoint_support=False): producing it dumps and re-checks the whole config.
        self.save_hyperparameters(
            {
                **as_yaml(dict(self.hparams)),
                "lr": type(self).default_lr if self.hparams.get("lr") is None else self.hparams.lr,
                "optimizer": plain_spec(optimizer),
                "scheduler": plain_spec(scheduler),
                "init_from": os.fspath(init_from) if isinstance(init_from, os.PathLike) else init_from,
                "_class_path": import_path(type(self)),
                "_instantiator": INSTANTIATOR,
            }
        )
        own = inspect.signature(type(self)).parameters  # a subclass without init_from (written before it), or
        for name in TRAINING_ARGUMENTS:  # one that never trains
            if name not in own:
                self.hparams.pop(name)
        self.check_hparams(self.hparams)
        self.num_classes = num_classes
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        check_factories(optimizer, scheduler, self.hparams.get("lr", self.default_lr))
        self.register_buffer("input_mean", torch.tensor(0.0))
        self.register_buffer("input_std", torch.tensor(1.0))
        # softmax(logits / temperature) are calibrated probabilities: fitted on the validation split at every
        # validation of a fit, so each checkpoint carries the temperature of its own weights (calibration.py)
        self.register_buffer("temperature", torch.tensor(1.0))
        self._validation_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        # Training sums its loss and correct predictions in plain tensors on the device (a metric's update costs
        # several times more per step) and hands them to these means once per epoch, which sync them across
        # processes; DivergenceGuard stops training at the first NaN, so they skip their NaN scan.
        self.train_loss, self.train_acc = MeanMetric(nan_strategy="disable"), MeanMetric(nan_strategy="disable")
        self.train_sums = TrainingSums.zeros(torch.device("cpu"))
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro", validate_args=False) for _ in range(2)
        )
        self.val_ece, self.test_ece = (
            MulticlassCalibrationError(num_classes, n_bins=CALIBRATION_BINS, validate_args=False) for _ in range(2)
        )

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | os.PathLike,
        map_location: Any = None,
        hparams_file: str | os.PathLike | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> LitClassifier:
        """Lightning's ``load_from_checkpoint``, made safe for checkpoints from elsewhere.

        Lightning hands the checkpoint's hyperparameters to jsonargparse, which imports any class path and
        calls any function name they hold; here they are vetted and the model is built from an allowlist
        (:mod:`mnist_lightning.checkpoint.vetting`), from one ``weights_only`` read. ``kwargs`` override
        hyperparameters as in Lightning; ``hparams_file``, ``strict=False`` and ``weights_only=False`` are refused.
        """
        if weights_only is False or strict is False or hparams_file is not None:
            raise CheckpointError(
                "load_from_checkpoint takes no weights_only=False, strict=False or hparams_file here: the "
                "checkpoint's own vetted hyperparameters and all of its weights are loaded, nothing else."
            )
        checkpoint = read_checkpoint(checkpoint_path, map_location="cpu")
        model = build_model(checkpoint, cls.checkpoint_allowlist, expected=cls, **kwargs)
        return model.to(map_location) if isinstance(map_location, (str, torch.device)) else model

    @classmethod
    def check_hparams(cls, hparams: Mapping[str, Any]) -> None:
        """Refuse hyperparameters that make no sense, before any memory is allocated for them.

        Also called on a checkpoint's hyperparameters before the model is built from them. They are bound to the
        constructor's signature, so every default is the constructor's own; keys starting with ``_`` (the stored
        class path) are no arguments.
        """
        arguments = {key: value for key, value in hparams.items() if not key.startswith("_")}
        try:
            bound = inspect.signature(cls).bind(**arguments)
        except TypeError as err:
            raise ConfigError(f"{cls.__name__}: {err}") from None
        bound.apply_defaults()
        cls.check_arguments(bound.arguments)

    @classmethod
    def check_arguments(cls, args: Mapping[str, Any]) -> None:
        """Check every constructor argument (defaults filled in); a subclass checks its own, then calls this."""
        num_classes, lr, interval = args["num_classes"], args["lr"], args["scheduler_interval"]
        lr = cls.default_lr if lr is None else lr
        require(is_int(num_classes) and 2 <= num_classes <= 1000, f"num_classes must be 2-1000, got {num_classes!r}")
        require(
            isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr < torch.finfo(torch.float32).max,
            f"lr must be a positive number a float32 can hold, got {lr!r}; try 3e-3 with Adam or 0.1 with SGD",
        )
        require(interval in ("step", "epoch"), f"scheduler_interval must be 'step' or 'epoch', got {interval!r}")
        init_from = args.get("init_from")
        require(
            init_from is None or (isinstance(init_from, (str, os.PathLike)) and 0 < len(os.fspath(init_from)) <= 4096),
            f"init_from must be the path of a checkpoint file or null, got {init_from!r}",
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for images ``(N, 1, 28, 28)`` (or flat ``(N, 784)``) with pixels in [0, 1], white digit on black."""
        return self.net(self.standardize(images).reshape(images.shape[0], *self.input_shape))

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities of images as :meth:`forward` takes them: softmax of the logits divided
        by the temperature fitted on the validation split."""
        return self.calibrated(self(images))

    def calibrated(self, logits: torch.Tensor) -> torch.Tensor:
        """Every answer's probabilities come from here, and never hold NaN: logits that overflowed (finite but huge
        weights of a damaged or crafted checkpoint) count as the largest float, a NaN one as 0."""
        return (logits.nan_to_num() / self.temperature).softmax(dim=1)

    def standardize(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] to the standardized input the layers were trained on (one fused pass)."""
        return (images - self.input_mean).div_(self.input_std)

    def set_input_statistics(self, mean: float, std: float) -> None:
        """Standardize inputs with ``mean`` and ``std`` from now on (the training split's pixel statistics)."""
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ConfigError(f"input statistics must be finite with std > 0, got mean {mean}, std {std}")
        self.input_mean.fill_(mean)
        self.input_std.fill_(std)

    def input_filters(self) -> torch.Tensor:
        """The first layer's weights as ``(K, 28, 28)`` images: what the model looks for, for pictures."""
        first = next(m for m in self.net.modules() if isinstance(m, nn.Linear))
        return first.weight.detach().reshape(-1, 28, 28)

    def setup(self, stage: str) -> None:
        """Before ``fit``, take the input statistics from the data module (a resumed checkpoint restores its own,
        and ``init_from`` brings those its weights were trained with)."""
        datamodule = self.trainer.datamodule
        if stage == "fit" and isinstance(datamodule, InputStatistics):
            self.set_input_statistics(datamodule.input_mean, datamodule.input_std)
        negatives = getattr(datamodule, "hparams", {}).get("negatives", 0)
        self.trains_on_negatives = stage == "fit" and bool(negatives)
        if self.trains_on_negatives and not self.outlier_weight:
            raise ConfigError(
                f"--data.negatives {negatives} adds pictures that are no digits, and {type(self).__name__} leaves them "
                "out of its loss: train a LitCNN with --model.outlier_weight 0.5, or set --data.negatives 0"
            )
        finder = any(isinstance(callback, LearningRateFinder) for callback in self.trainer.callbacks)
        if stage == "fit" and self.hparams.get("init_from") and finder:
            raise ConfigError(
                "--model.init_from with the learning-rate finder: the finder runs before the weights are loaded "
                "and would search on fresh ones; give --model.lr instead (a fine-tune wants a small one)"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints from before the model owned its normalization kept it in the data module's state: move it.
        Every stored value that divides an answer is bounded (a damaged or crafted file is refused): a temperature
        inside the range a fit can give, an input_std of (0.01, 1] and an input_mean of [0, 1], as pixels have."""
        state = checkpoint.get("state_dict", {})
        legacy = checkpoint.get("MNISTDataModule")
        if "input_mean" not in state and isinstance(legacy, dict) and {"mean", "std"} <= legacy.keys():
            state["input_mean"] = torch.tensor(float(legacy["mean"]))
            state["input_std"] = torch.tensor(float(legacy["std"]))
        if state and "temperature" not in state:  # written before calibration: probabilities as they were
            state["temperature"] = torch.tensor(1.0)
        for name, value in state.items():  # an ensemble's members' values too
            bounds = STORED_BOUNDS.get(name.rpartition(".")[2])
            if bounds is None or not isinstance(value, torch.Tensor) or value.numel() != 1:
                continue
            low, high, shown = bounds
            if not low <= float(value) <= high or (name.endswith("input_std") and not float(value) > low):
                raise CheckpointError(f"The checkpoint's {name} is {float(value):g}, expected {shown}: it is damaged.")

    def _evaluate(self, batch: Sequence[torch.Tensor], loss: MeanMetric, accuracy: MulticlassAccuracy) -> torch.Tensor:
        """The batch's logits, its loss and accuracy added to the stage's metrics."""
        logits, labels = self(batch[0]).detach(), batch[1]
        loss.update(F.cross_entropy(logits, labels), weight=labels.shape[0])
        accuracy.update(logits, labels)
        return logits

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        logits = self(images)
        if not self.trains_on_negatives:  # digits only: the plain loss, nothing more per step
            loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
            digits = None
        else:
            digits = labels != NEGATIVE_LABEL
            per_image = F.cross_entropy(
                logits, labels, label_smoothing=self.label_smoothing, ignore_index=NEGATIVE_LABEL, reduction="none"
            )
            loss = per_image.sum() / digits.sum().clamp(min=1)  # the mean over the digits, without a host sync
            uniform = -F.log_softmax(logits.float(), dim=1).mean(dim=1)  # cross-entropy against 1/num_classes
            others = (~digits).float()
            loss = loss + self.outlier_weight * (uniform * others).sum() / others.sum().clamp(min=1)
        if self.train_sums.loss.device != loss.device:  # moved since the epoch started (or called without a Trainer)
            self.train_sums = TrainingSums.zeros(loss.device)
        self.train_sums.add(loss.detach(), logits.detach(), labels, digits)
        return loss

    def on_train_epoch_start(self) -> None:
        self.train_sums = TrainingSums.zeros(self.device)

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Returns the logits, for callbacks that draw or count predictions."""
        logits = self._evaluate(batch, self.val_loss, self.val_acc)
        self._validation_outputs.append((logits, batch[1]))
        return logits

    def test_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Returns the logits, for callbacks that draw or count predictions."""
        logits = self._evaluate(batch, self.test_loss, self.test_acc)
        self.test_ece.update(self.calibrated(logits), batch[1])
        return logits

    def predict_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Predicted labels and calibrated class probabilities; true labels and sample indices when the batch has
        them."""
        probs = self.probabilities(batch[0])
        out = {"probs": probs, "preds": probs.argmax(dim=1)}
        out.update(zip(("target", "index"), batch[1:], strict=False))
        return out

    def on_train_epoch_end(self) -> None:
        # Metrics are summed every step but logged once per epoch: each self.log call has a cost of its own.
        self.train_sums.update(self.train_loss, self.train_acc)
        self.log_dict({"train/loss": self.train_loss, "train/acc": self.train_acc}, prog_bar=True)

    def on_validation_epoch_start(self) -> None:
        self._validation_outputs.clear()

    def on_validation_epoch_end(self) -> None:
        self.log_dict({"val/loss": self.val_loss, "val/acc": self.val_acc}, prog_bar=True)
        if self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking:
            self.calibrate()

    def calibrate(self) -> None:
        """Fit the temperature on this validation's logits (every rank's share) and log the calibration error."""
        outputs = self._validation_outputs or [(torch.zeros(0, self.num_classes), torch.zeros(0, dtype=torch.long))]
        logits = torch.cat([out[0] for out in outputs]).float()
        labels = torch.cat([out[1] for out in outputs])
        self._validation_outputs.clear()
        temperature = fit_temperature(logits, labels, lambda sums: self.trainer.strategy.reduce(sums, reduce_op="sum"))
        self.temperature.fill_(temperature)
        self.val_ece.update(self.calibrated(logits), labels)
        self.log_dict({"val/ece": self.val_ece, "val/temperature": temperature})

    def on_test_epoch_end(self) -> None:
        self.log_dict({"test/loss": self.test_loss, "test/acc": self.test_acc, "test/ece": self.test_ece})

    def on_fit_start(self) -> None:
        """Load the ``init_from`` weights unless the run resumes a checkpoint (known only now: ``trainer.ckpt_path``
        is set after ``setup``, before this hook, and the resumed weights are already in place).

        Build the optimizer again when a callback changed ``lr`` after it was built (the LR finder runs in its
        own ``on_fit_start``): the learning rate the run records is the one it trains with."""
        if self.hparams.get("init_from") and self.trainer.ckpt_path is None:
            self.load_state_dict(initial_weights(self.hparams.init_from, self, self.checkpoint_allowlist))
        if getattr(self, "_configured_lr", self.hparams.lr) != self.hparams.lr:
            self.trainer.strategy.setup_optimizers(self.trainer)

    def configure_optimizers(self) -> Any:
        self._configured_lr = self.hparams.lr
        optimizer = self.optimizer_factory(self.parameters(), self.hparams.lr)
        if self.scheduler_factory is None:
            return optimizer
        interval = self.hparams.scheduler_interval
        kwargs = {"total_steps": self._run_length(interval)} if wants_run_length(self.scheduler_factory) else {}
        scheduler = self.scheduler_factory(optimizer, **kwargs)
        config = {"scheduler": scheduler, "interval": interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            # a plateau is seen in a validation metric, which exists once per epoch
            config.update(interval="epoch", monitor=getattr(scheduler, "monitor", "val/loss"))
        return {"optimizer": optimizer, "lr_scheduler": config}

    def _run_length(self, interval: str) -> int:
        """How many times the scheduler will step in this fit."""
        trainer = self.trainer
        length = trainer.estimated_stepping_batches if interval == "step" else trainer.max_epochs
        if length is None or length < 0 or not math.isfinite(length):
            raise ConfigError(
                "the LR scheduler spans the whole run, which has no end: set --trainer.max_epochs "
                "(or max_steps), or give the scheduler total_steps"
            )
        return int(length)
