"""Optimizers and learning-rate schedules: the schedule of this project that torch does not have, and the check
that a model's optimizer and scheduler factories build before training starts."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from mnist_lightning.errors import ConfigError
from mnist_lightning.specs import factory_class

OptimizerFactory = Callable[[Iterable, float], Optimizer]
"""Builds the optimizer from ``(parameters, lr)``: ``lr`` comes from the model, the rest from the config."""


class CosineToZeroLR(LRScheduler):
    """Cosine decay of every learning rate to zero over ``total_steps`` scheduler steps.

    ``total_steps=None`` means "the whole run": the model fills in the run's length when it builds the
    optimizer (as for any scheduler with a ``total_steps`` argument, e.g. ``OneCycleLR``), so the default
    needs no arithmetic from the user.

    >>> import torch
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


def check_factories(optimizer: OptimizerFactory, scheduler: LRSchedulerCallable | None, lr: float) -> None:
    """Build the optimizer and scheduler once on a dummy parameter, so that bad arguments (``momentum -5``,
    ``OneCycleLR`` without ``max_lr``) fail now in one line rather than inside ``fit`` with a traceback."""
    try:
        dummy = optimizer([nn.Parameter(torch.zeros(1))], lr)
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"--model.optimizer {factory_class(optimizer).__name__}: {err}") from None
    try:
        if scheduler is not None:
            scheduler(dummy, **({"total_steps": 1} if wants_run_length(scheduler) else {}))
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"--model.scheduler {factory_class(scheduler).__name__}: {err}") from None


def wants_run_length(factory: Any) -> bool:
    """Whether a scheduler has a ``total_steps`` argument left empty (CosineToZeroLR, OneCycleLR): the model fills
    in the run's length."""
    takes_it = "total_steps" in inspect.signature(factory_class(factory)).parameters
    return takes_it and getattr(factory, "keywords", {}).get("total_steps") is None
