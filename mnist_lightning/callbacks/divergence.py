"""Stop at the first non-finite gradient or weight, and say what caused it."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.optim import Optimizer

from mnist_lightning.errors import TrainingDivergedError


class DivergenceGuard(Callback):
    """Stops training at the first NaN or infinite gradient or weight, before the next update.

    Without it Lightning trains on with NaN weights (torchmetrics even drops the NaN losses from the logged
    mean) and saves them as the "best" checkpoint. Gradients are checked before each update, and the
    weights the previous update made, in one scalar sync per step.
    """

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grads = [p.grad for p in params if p.grad is not None]
        if not params or torch.stack([t.isfinite().all() for t in (*params, *grads)]).all():
            return
        weights_broke = not all(p.isfinite().all() for p in params)
        what = (
            f"the update of step {trainer.global_step - 1} made the weights NaN or infinite"
            if weights_broke
            else f"the loss and its gradients became NaN or infinite at step {trainer.global_step}"
        )
        raise TrainingDivergedError(
            f"Training diverged in epoch {trainer.current_epoch}: {what}. Stopped; no checkpoint of it is written. "
            f"{cause(pl_module, optimizer)}."
        )


def cause(pl_module: L.LightningModule, optimizer: Optimizer) -> str:
    """The likely cause: in float16 an eps below its smallest number is 0 (Adam divides by it), else the lr."""
    dtype = next(p.dtype for group in optimizer.param_groups for p in group["params"])
    eps = optimizer.defaults.get("eps")
    if dtype == torch.float16 and isinstance(eps, float) and torch.tensor(eps, dtype=dtype).item() == 0:
        return (
            f"Cause: in float16 the optimizer's eps {eps:g} rounds to 0, so its update divides by zero at any "
            "learning rate; pass --model.optimizer.eps 1e-4, or use --trainer.precision bf16-true or 16-mixed"
        )
    lr = pl_module.hparams.get("lr")
    if lr:
        return f"Try a smaller learning rate than --model.lr {lr:g}, e.g. {lr / 10:g}"
    return "Try a smaller learning rate"


OVERFLOW_WORDS = ("overflow", "inf", "nan", "finite")
"""What torch says when an optimizer's arithmetic leaves float range (``value cannot be converted to type float
without overflow``, ``cannot convert float infinity to integer``, ...)."""


def diverged_in_step(err: Exception) -> TrainingDivergedError | None:
    """``err`` as a divergence when an optimizer's ``step`` raised it on an overflowing or non-finite value.

    Such a value (a learning rate that passes validation but is too large for float32 inside ``Adam.step``)
    never reaches the weights :class:`DivergenceGuard` checks: torch raises inside the step. Recognized by the
    class of error, raised from a frame of a ``torch.optim.Optimizer``, whatever the optimizer.
    """
    if not isinstance(err, RuntimeError | ArithmeticError | ValueError):
        return None
    said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if not any(word in said.lower() for word in OVERFLOW_WORDS):
        return None
    optimizer = None
    tb = err.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, Optimizer):
            optimizer = candidate
        tb = tb.tb_next
    if optimizer is None:
        return None
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    lr = group.get("initial_lr", group.get("lr"))
    shown = f" --model.lr {lr:g}" if isinstance(lr, float | int) else ""
    return TrainingDivergedError(
        f"Training diverged: {type(optimizer).__name__}'s step overflowed ({said}) with{shown or ' its settings'}; "
        f"stopped, no checkpoint of it is written. Try a smaller learning rate{f' than{shown}' if shown else ''}"
    )
