"""Classifiers: one base class holds input normalization, loss, metrics, logging and optimizer handling;
subclasses hold layers.

Every model takes pixels in [0, 1] (what ``transforms.ToTensor()`` gives) and standardizes them itself with
the ``input_mean``/``input_std`` buffers, which are set from the training split before ``fit`` and travel in
the state_dict: a loaded model needs nothing else to be fed. Hyperparameters are always stored as plain values
(numbers, strings, ``{"class_path": ...}`` dicts) so that a checkpoint loads with
``torch.load(weights_only=True)`` and ``load_from_checkpoint`` rebuilds the model without any config, whether
it was made by the CLI or in a script.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import itertools
import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from mnist_lightning.errors import CheckpointError, ConfigError

OptimizerFactory = Callable[[Iterable, float], Optimizer]
"""Builds the optimizer from ``(parameters, lr)``: ``lr`` comes from the model, the rest from the config."""

MAX_PARAMETERS = 50_000_000
INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


class CosineToZeroLR(LRScheduler):
    """Cosine decay of every learning rate to zero over ``total_steps`` scheduler steps.

    ``total_steps=None`` means "the whole run": the model fills in the run's length when it builds the
    optimizer (as for any scheduler with a ``total_steps`` argument, e.g. ``OneCycleLR``), so the default
    needs no arithmetic from the user.

    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = CosineToZeroLR(opt, total_steps=4)
    >>> lrs = []
    >>> for _ in range(5):
    ...     opt.step()
    ...     sched.step()
    ...     lrs.append(round(sched.get_last_lr()[0], 3))
    >>> lrs
    [0.854, 0.5, 0.146, 0.0, 0.0]
    """

    def __init__(self, optimizer: Optimizer, total_steps: int | None = None, last_epoch: int = -1) -> None:
        self.total_steps = total_steps
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        progress = min(self.last_epoch / max(self.total_steps or 1, 1), 1.0)
        return [base_lr * 0.5 * (1.0 + math.cos(math.pi * progress)) for base_lr in self.base_lrs]


@runtime_checkable
class InputStatistics(Protocol):
    """What a data module offers a model before ``fit``: the mean and std of its training pixels."""

    input_mean: float
    input_std: float


def import_path(obj: Any) -> str:
    """The import path jsonargparse writes: the shortest that imports ``obj`` (``mnist_lightning.LitLogReg``,
    ``torch.optim.SGD``).

    >>> import_path(torch.optim.SGD), import_path(torch.optim.lr_scheduler.StepLR)
    ('torch.optim.SGD', 'torch.optim.lr_scheduler.StepLR')
    """
    parts = obj.__module__.split(".")
    for end in range(1, len(parts)):
        package = importlib.import_module(".".join(parts[:end]))
        if getattr(package, obj.__qualname__, None) is obj:
            return f"{package.__name__}.{obj.__qualname__}"
    return f"{obj.__module__}.{obj.__qualname__}"


def plain_spec(factory: Any) -> Any:
    """Describe an optimizer or scheduler factory as the plain ``{"class_path", "init_args"}`` the CLI writes.

    Accepts a class, or a ``functools.partial`` around exactly one class (also the partials jsonargparse
    builds when ``load_from_checkpoint`` re-creates a model).

    >>> plain_spec(functools.partial(torch.optim.SGD, momentum=0.9))
    {'class_path': 'torch.optim.SGD', 'init_args': {'momentum': 0.9}}
    """
    if factory is None or isinstance(factory, dict):
        return factory
    if isinstance(factory, type):
        return {"class_path": import_path(factory), "init_args": {}}
    if isinstance(factory, functools.partial):
        classes = [part for part in (factory.func, *factory.args) if isinstance(part, type)]
        if len(classes) == 1:
            return {"class_path": import_path(classes[0]), "init_args": _as_yaml(dict(factory.keywords))}
    raise TypeError(
        f"cannot store {factory!r} in a checkpoint: pass an optimizer/scheduler class or functools.partial of one"
    )


def _as_yaml(value: Any) -> Any:
    """Tuples (``channels``, Adam's ``betas``) as lists, as jsonargparse writes them: plain YAML for
    ``hparams.yaml`` and checkpoints, loadable with ``yaml.safe_load``."""
    if isinstance(value, dict):
        return {key: _as_yaml(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_yaml(item) for item in value]
    return value


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def fold_standardization(
    weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a linear layer that first standardizes its input: ``W (x - mean) / std + b`` equals
    ``(W / std) x + (b - (W / std).sum(1) * mean)``.

    >>> w, b = torch.randn(3, 5), torch.randn(3)
    >>> x, mean, std = torch.rand(2, 5), torch.tensor(0.1), torch.tensor(0.3)
    >>> folded_w, folded_b = fold_standardization(w, b, mean, std)
    >>> torch.allclose(F.linear(x, folded_w, folded_b), F.linear((x - mean) / std, w, b), atol=1e-5)
    True
    """
    scaled = weight / std
    return scaled, bias - scaled.sum(dim=1) * mean


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
    """

    input_shape: tuple[int, ...] = (-1,)
    """The shape of one image as the layers take it: flat vectors unless a subclass says otherwise."""
    cpu_threads: int | None = 1
    default_lr: float = 3e-3
    """The learning rate ``lr=None`` stands for: what this model trains well with under the default Adam."""
    """CPU threads ``--torch_threads auto`` gives this model (``None``: every core the process may use). A linear
    model's small matmuls gain little from a second thread and lose much when a core is busy (README, Speed)."""

    def __init__(
        self,
        num_classes: int = 10,
        lr: float | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = CosineToZeroLR,
        scheduler_interval: Literal["step", "epoch"] = "step",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Stored in plain form (class paths and arguments), whoever built the model: a checkpoint is read without
        # importing anything it names (checkpoints.py). The CLI does not add LightningCLI's own record of the
        # config (load_from_checkpoint_support=False): producing it dumps and re-checks the whole config.
        self.save_hyperparameters(
            {
                **_as_yaml(dict(self.hparams)),
                "lr": type(self).default_lr if self.hparams.get("lr") is None else self.hparams.lr,
                "optimizer": plain_spec(optimizer),
                "scheduler": plain_spec(scheduler),
                "_class_path": import_path(type(self)),
                "_instantiator": INSTANTIATOR,
            }
        )
        self.check_hparams(self.hparams)
        self.num_classes = num_classes
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        _try_factories(optimizer, scheduler, self.hparams.lr)
        self.register_buffer("input_mean", torch.tensor(0.0))
        self.register_buffer("input_std", torch.tensor(1.0))
        # DivergenceGuard stops training at the first NaN, so the training mean skips its per-step NaN scan
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(nan_strategy="disable"), MeanMetric(), MeanMetric()
        self.train_acc, self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro", validate_args=False) for _ in range(3)
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
        (:mod:`mnist_lightning.vetting`), from one ``weights_only`` read. ``kwargs`` override hyperparameters
        as in Lightning; ``hparams_file``, ``strict=False`` and ``weights_only=False`` are refused.
        """
        from mnist_lightning.checkpoints import build_model, read_checkpoint  # imports this module

        if weights_only is False or strict is False or hparams_file is not None:
            raise CheckpointError(
                "load_from_checkpoint takes no weights_only=False, strict=False or hparams_file here: the "
                "checkpoint's own vetted hyperparameters and all of its weights are loaded, nothing else."
            )
        checkpoint = read_checkpoint(checkpoint_path, map_location="cpu")
        model = build_model(checkpoint, expected=cls, **kwargs)
        return model.to(map_location) if isinstance(map_location, (str, torch.device)) else model

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        """Refuse hyperparameters that make no sense, before any memory is allocated for them.

        Also called on a checkpoint's hyperparameters before the model is built from them.
        """
        num_classes = hparams.get("num_classes", 10)
        lr = hparams.get("lr")
        lr = cls.default_lr if lr is None else lr
        _require(_is_int(num_classes) and 2 <= num_classes <= 1000, f"num_classes must be 2-1000, got {num_classes!r}")
        _require(
            isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr < torch.finfo(torch.float32).max,
            f"lr must be a positive number a float32 can hold, got {lr!r}; try 3e-3 with Adam or 0.1 with SGD",
        )
        interval = hparams.get("scheduler_interval", "step")
        _require(interval in ("step", "epoch"), f"scheduler_interval must be 'step' or 'epoch', got {interval!r}")
        input_dim = hparams.get("input_dim", 784)  # every subclass takes flat images of this size
        _require(_is_int(input_dim) and input_dim >= 1, f"input_dim must be a whole number >= 1, got {input_dim!r}")

    @staticmethod
    def _check_size(num_parameters: int) -> None:
        _require(
            num_parameters <= MAX_PARAMETERS,
            f"these layer sizes need {num_parameters:,} parameters, more than the {MAX_PARAMETERS:,} allowed",
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for images ``(N, 1, 28, 28)`` (or flat ``(N, 784)``) with pixels in [0, 1], white digit on black."""
        return self.net(self.standardize(images).reshape(images.shape[0], *self.input_shape))

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
        """Before ``fit``, take the input statistics from the data module (a resumed checkpoint restores its own)."""
        datamodule = self.trainer.datamodule
        if stage == "fit" and isinstance(datamodule, InputStatistics):
            self.set_input_statistics(datamodule.input_mean, datamodule.input_std)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints from before the model owned its normalization kept it in the data module's state: move it."""
        state = checkpoint.get("state_dict", {})
        legacy = checkpoint.get("MNISTDataModule")
        if "input_mean" not in state and isinstance(legacy, dict) and {"mean", "std"} <= legacy.keys():
            state["input_mean"] = torch.tensor(float(legacy["mean"]))
            state["input_std"] = torch.tensor(float(legacy["std"]))

    def _step(
        self, batch: Sequence[torch.Tensor], loss_metric: MeanMetric, acc_metric: MulticlassAccuracy
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch[0], batch[1]
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        loss_metric.update(loss.detach(), weight=labels.shape[0])
        acc_metric.update(logits.detach(), labels)
        return loss, logits.detach()

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, self.train_loss, self.train_acc)[0]

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Returns the logits, for callbacks that draw or count predictions."""
        return self._step(batch, self.val_loss, self.val_acc)[1]

    def test_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Returns the logits, for callbacks that draw or count predictions."""
        return self._step(batch, self.test_loss, self.test_acc)[1]

    def predict_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Predicted labels and class probabilities; true labels and sample indices when the batch has them."""
        probs = self(batch[0]).softmax(dim=1)
        out = {"probs": probs, "preds": probs.argmax(dim=1)}
        out.update(zip(("target", "index"), batch[1:], strict=False))
        return out

    def on_train_epoch_end(self) -> None:
        # Metrics are updated every step but logged once per epoch: self.log costs about 1 ms a call.
        self.log_dict({"train/loss": self.train_loss, "train/acc": self.train_acc}, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({"val/loss": self.val_loss, "val/acc": self.val_acc}, prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self.log_dict({"test/loss": self.test_loss, "test/acc": self.test_acc})

    def on_fit_start(self) -> None:
        """Build the optimizer again when a callback changed ``lr`` after it was built (the LR finder runs in its
        own ``on_fit_start``): the learning rate the run records is the one it trains with."""
        if getattr(self, "_configured_lr", self.hparams.lr) != self.hparams.lr:
            self.trainer.strategy.setup_optimizers(self.trainer)

    def configure_optimizers(self) -> Any:
        self._configured_lr = self.hparams.lr
        optimizer = self.optimizer_factory(self.parameters(), self.hparams.lr)
        if self.scheduler_factory is None:
            return optimizer
        interval = self.hparams.scheduler_interval
        kwargs = {"total_steps": self._run_length(interval)} if _wants_run_length(self.scheduler_factory) else {}
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


def _try_factories(optimizer: OptimizerFactory, scheduler: LRSchedulerCallable | None, lr: float) -> None:
    """Build the optimizer and scheduler once on a dummy parameter, so that bad arguments (``momentum -5``,
    ``OneCycleLR`` without ``max_lr``) fail now in one line rather than inside ``fit`` with a traceback."""
    try:
        dummy = optimizer([nn.Parameter(torch.zeros(1))], lr)
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"--model.optimizer {_name(optimizer)}: {err}") from None
    try:
        if scheduler is not None:
            scheduler(dummy, **({"total_steps": 1} if _wants_run_length(scheduler) else {}))
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"--model.scheduler {_name(scheduler)}: {err}") from None


def _name(factory: Any) -> str:
    return plain_spec(factory)["class_path"].rpartition(".")[2]


def _factory_class(factory: Any) -> type | None:
    spec = plain_spec(factory)
    module, _, name = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name, None)


def _wants_run_length(factory: Any) -> bool:
    """Whether a scheduler has a ``total_steps`` argument left empty (CosineToZeroLR, OneCycleLR)."""
    cls = _factory_class(factory)
    takes_it = cls is not None and "total_steps" in inspect.signature(cls).parameters
    return takes_it and getattr(factory, "keywords", {}).get("total_steps") is None


class LitLogReg(LitClassifier):
    """Multinomial logistic regression: one ``nn.Linear`` layer, the classic tutorial model.

    It takes pixels in [0, 1] and standardizes them with its own buffers:

    >>> model = LitLogReg()
    >>> model.set_input_statistics(0.1307, 0.3081)
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> list(model.state_dict())
    ['input_mean', 'input_std', 'linear.weight', 'linear.bias']
    """

    default_lr = 2e-2

    def __init__(
        self,
        input_dim: int = 784,
        num_classes: int = 10,
        lr: float | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = CosineToZeroLR,
        scheduler_interval: Literal["step", "epoch"] = "step",
    ) -> None:
        super().__init__(num_classes, lr, optimizer, scheduler, scheduler_interval)
        self.linear = nn.Linear(input_dim, num_classes)

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        super().check_hparams(hparams)
        cls._check_size((hparams.get("input_dim", 784) + 1) * hparams.get("num_classes", 10))

    @property
    def net(self) -> nn.Module:
        return self.linear

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The standardization folded into the layer: a pass over its 10x784 weights instead of over the batch,
        which cost 15 % of a training epoch (bench/RESULTS.md)."""
        weight, bias = fold_standardization(self.linear.weight, self.linear.bias, self.input_mean, self.input_std)
        return F.linear(images.reshape(images.shape[0], -1), weight, bias)


class LitMLP(LitClassifier):
    """Feed-forward network, by default 784-512-256-10 with ReLU, dropout 0.2 and Adam lr 0.003: 98.2 % on the
    test set with nothing else set (12 epochs of batch 1024); ``hidden_dims=(128, 64)`` is the tutorials' MLP
    (``configs/mlp.yaml``), which needs smaller batches and more epochs for 97.9 %.

    Args:
        hidden_dims: Width of each hidden layer.
        activation: ``relu``, ``gelu``, ``silu``, ``tanh`` or ``sigmoid``.
        dropout: Dropout probability after each hidden activation.

    >>> LitMLP()(torch.zeros(3, 784)).shape
    torch.Size([3, 10])
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden_dims: tuple[int, ...] = (512, 256),
        activation: Literal["relu", "gelu", "silu", "tanh", "sigmoid"] = "relu",
        dropout: float = 0.2,
        num_classes: int = 10,
        lr: float | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = CosineToZeroLR,
        scheduler_interval: Literal["step", "epoch"] = "step",
    ) -> None:
        super().__init__(num_classes, lr, optimizer, scheduler, scheduler_interval)
        layers: list[nn.Module] = []
        widths = [input_dim, *hidden_dims]
        for fan_in, fan_out in itertools.pairwise(widths):
            layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(widths[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """As LitLogReg's: the standardization folded into the first layer instead of a pass over the batch."""
        first = self.net[0]
        weight, bias = fold_standardization(first.weight, first.bias, self.input_mean, self.input_std)
        return self.net[1:](F.linear(images.reshape(images.shape[0], -1), weight, bias))

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        super().check_hparams(hparams)
        input_dim, num_classes = hparams.get("input_dim", 784), hparams.get("num_classes", 10)
        hidden = hparams.get("hidden_dims", (512, 256))
        dropout, activation = hparams.get("dropout", 0.2), hparams.get("activation", "relu")
        _require(
            isinstance(hidden, (list, tuple)) and len(hidden) <= 32 and all(_is_int(w) and w >= 1 for w in hidden),
            f"hidden_dims must be a list of at most 32 widths >= 1, got {hidden!r}",
        )
        _require(activation in ACTIVATIONS, f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        _require(
            isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0, f"dropout must be in [0, 1), got {dropout!r}"
        )
        widths = [input_dim, *hidden, num_classes]
        cls._check_size(sum((a + 1) * b for a, b in itertools.pairwise(widths)))


MAX_MULTIPLY_ADDS = 200_000_000
"""Per image: a CNN this size already takes minutes per epoch on a 2-core CPU."""


def cnn_layers(
    channels: Sequence[int],
    kernel_sizes: Sequence[int],
    hidden_dim: int,
    dropout: float,
    batch_norm: bool,
    num_classes: int = 10,
    side: int = 28,
    convs_per_block: int = 1,
) -> nn.Sequential:
    """The layers of :class:`LitCNN` as a plain ``nn.Sequential`` of ``(N, 1, side, side)`` standardized images:
    each block is ``convs_per_block`` times conv (same padding), optional batch norm and ReLU, then 2x2
    max-pooling; then an optional hidden layer and the classifier. A bare torch script rebuilds the layers of
    an exported state_dict with it.

    >>> cnn_layers((8, 16), (5, 3), 32, 0.0, True)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    layers: list[nn.Module] = []
    fan_in = 1
    for width, kernel in zip(channels, kernel_sizes, strict=True):
        for _ in range(convs_per_block):
            layers.append(nn.Conv2d(fan_in, width, kernel, padding=kernel // 2, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            fan_in = width
        layers.append(nn.MaxPool2d(2))
        side = side // 2
    layers.append(nn.Flatten())
    features = fan_in * side * side
    if hidden_dim > 0:
        layers += [nn.Linear(features, hidden_dim), nn.ReLU(inplace=True)]
        features = hidden_dim
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def cnn_cost(
    channels: Sequence[int],
    kernel_sizes: Sequence[int],
    hidden_dim: int,
    num_classes: int = 10,
    side: int = 28,
    convs_per_block: int = 1,
) -> tuple[int, int]:
    """Parameters and multiply-adds per image of :func:`cnn_layers` (batch norm ignored), computed without
    building it, so absurd sizes are refused before any memory is allocated.

    >>> cnn_cost((16, 32), (5, 3), 128)
    (207178, 1418752)
    """
    params, macs, fan_in = 0, 0, 1
    for width, kernel in zip(channels, kernel_sizes, strict=True):
        for _ in range(convs_per_block):
            params += width * (fan_in * kernel * kernel + 1)
            macs += width * fan_in * kernel * kernel * side * side
            fan_in = width
        side = side // 2
    widths = [fan_in * side * side, *([hidden_dim] if hidden_dim > 0 else []), num_classes]
    for a, b in itertools.pairwise(widths):
        params += (a + 1) * b
        macs += a * b
    return params, macs


class LitCNN(LitClassifier):
    """A small convolutional network: by default two conv blocks (16 and 32 channels, 5x5 and 3x3 kernels, ReLU,
    2x2 max-pooling), a hidden layer of 128 and dropout 0.25: about 1.4 M multiply-adds per image.

    The layers are kept channels-last (NHWC), which oneDNN's CPU convolutions run about 1.45x faster than NCHW
    here (bench/RESULTS.md); convolutions scale with cores, so ``--torch_threads auto`` gives it all of them.

    Args:
        channels: Output channels of each conv block (1-4 blocks: each halves the image side).
        kernel_sizes: Odd kernel size of each conv block (same padding), one per block.
        hidden_dim: Width of the fully connected layer after the convolutions (0: none).
        dropout: Dropout probability before the classifier.
        batch_norm: Batch norm after each convolution (the convolution then has no bias).
        convs_per_block: Convolutions before each pooling (2: the VGG-style pairs that a 99.5 % MNIST net needs,
            more depth at the same image size).

    >>> LitCNN()(torch.zeros(3, 1, 28, 28)).shape
    torch.Size([3, 10])
    """

    input_shape = (1, 28, 28)
    cpu_threads = None

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32),
        kernel_sizes: tuple[int, ...] = (5, 3),
        hidden_dim: int = 128,
        dropout: float = 0.25,
        batch_norm: bool = False,
        convs_per_block: int = 1,
        num_classes: int = 10,
        lr: float | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = CosineToZeroLR,
        scheduler_interval: Literal["step", "epoch"] = "step",
    ) -> None:
        super().__init__(num_classes, lr, optimizer, scheduler, scheduler_interval)
        self.net = cnn_layers(
            channels, kernel_sizes, hidden_dim, dropout, batch_norm, num_classes, convs_per_block=convs_per_block
        )
        self.net.to(memory_format=torch.channels_last)

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        super().check_hparams(hparams)
        channels, kernels = hparams.get("channels", (16, 32)), hparams.get("kernel_sizes", (5, 3))
        hidden, dropout = hparams.get("hidden_dim", 128), hparams.get("dropout", 0.25)
        _require(
            isinstance(channels, (list, tuple))
            and 1 <= len(channels) <= 4
            and all(_is_int(c) and c >= 1 for c in channels),
            f"channels must be a list of 1-4 widths >= 1 (each block halves the 28x28 image), got {channels!r}",
        )
        _require(
            isinstance(kernels, (list, tuple))
            and len(kernels) == len(channels)
            and all(_is_int(k) and k % 2 == 1 and 1 <= k <= 27 for k in kernels),
            f"kernel_sizes must give one odd size 1-27 per conv block ({len(channels)} here), got {kernels!r}",
        )
        _require(_is_int(hidden) and hidden >= 0, f"hidden_dim must be a whole number >= 0, got {hidden!r}")
        _require(
            isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0, f"dropout must be in [0, 1), got {dropout!r}"
        )
        _require(isinstance(hparams.get("batch_norm", False), bool), "batch_norm must be true or false")
        convs = hparams.get("convs_per_block", 1)
        _require(_is_int(convs) and 1 <= convs <= 4, f"convs_per_block must be a whole number 1-4, got {convs!r}")
        params, macs = cnn_cost(channels, kernels, hidden, hparams.get("num_classes", 10), convs_per_block=convs)
        cls._check_size(params)
        _require(
            macs <= MAX_MULTIPLY_ADDS,
            f"these layer sizes need {macs:,} multiply-adds per image, more than the {MAX_MULTIPLY_ADDS:,} allowed",
        )

    def input_filters(self) -> torch.Tensor:
        """The first convolution's kernels as ``(K, k, k)`` images."""
        return self.net[0].weight.detach()[:, 0]
