"""Learning-rate schedules of this project that torch does not have."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


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
