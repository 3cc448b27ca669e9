"""Stop at the first non-finite gradient or weight, say what caused it, and never save non-finite weights."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from torch.optim import Optimizer

from mnist_lightning.errors import TrainingDivergedError

DEFERRED_STEPS = 50
"""On an accelerator, how many steps the check's verdicts stay on the device before one is read."""


class DivergenceGuard(Callback):
    """Stops training at the first NaN or infinite gradient or weight, before the next update, and before any
    checkpoint of non-finite weights is written.

    Without it Lightning trains on with NaN weights (torchmetrics even drops the NaN losses from the logged
    mean) and saves them as the "best" checkpoint; ``EarlyStopping(check_finite=True)`` looks only at a validation
    metric, after the damage, and ``detect_anomaly`` slows every step. Before each update the gradients' largest
    magnitude is taken: finite exactly when every gradient is (unlike a sum or a norm, it never overflows). A NaN
    or infinite weight made by the previous update makes the loss and so every gradient NaN, so it shows there
    too; the weights themselves are checked before every validation and every save.

    Reading the verdict waits for the device: on the CPU that costs nothing, so it is read at every step; on an
    accelerator the verdicts collect on the device (the first failing step is kept there) and are read every
    ``check_every_n_steps`` steps, at every validation and before every save, so the last update of an epoch is
    never saved unchecked.

    Args:
        check_every_n_steps: Steps between reads of the verdict; ``None``: 1 on the CPU, ``DEFERRED_STEPS``
            on an accelerator.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        if check_every_n_steps is not None and check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1 or None, got {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps
        self._first_bad: torch.Tensor | None = None  # deferred checks: the first failing step, -1 while none

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_bad = None

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        step = trainer.global_step
        with torch.no_grad():
            finite = torch.stack([g.abs().amax().float() for g in grads]).amax().isfinite()
        every = self.check_every_n_steps or (1 if pl_module.device.type == "cpu" else DEFERRED_STEPS)
        if every == 1:
            if not finite:
                params = [p for group in optimizer.param_groups for p in group["params"]]
                what = (
                    f"the update of step {step - 1} made the weights NaN or infinite"
                    if not _finite(params)
                    else f"the loss and its gradients became NaN or infinite at step {step}"
                )
                raise _diverged(trainer, what, cause(pl_module, optimizer))
            return
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=finite.device)
        self._first_bad = torch.where(finite | (self._first_bad >= 0), self._first_bad, step)
        if (step + 1) % every == 0:
            self._check_weights(trainer, pl_module, optimizer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A validation of a fit evaluates (and may save) the weights the last update made: check them first."""
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._check_weights(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check_weights(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Called before a checkpoint of a fit is written: nothing non-finite is saved, and the cause is said."""
        if trainer.state.fn == TrainerFn.FITTING:
            self._check_weights(trainer, pl_module)

    def _check_weights(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer | None = None
    ) -> None:
        """Raise if a deferred check failed (the run already trained past that step, so the step is named) or a
        weight is non-finite now."""
        if not trainer.optimizers:
            return
        optimizer = optimizer or trainer.optimizers[0]
        first_bad = -1 if self._first_bad is None else int(self._first_bad.item())
        if first_bad >= 0:
            what = f"the gradients or the weights became NaN or infinite at step {first_bad}"
            raise _diverged(trainer, what, cause(pl_module, optimizer))
        if not _finite(pl_module.parameters()):
            what = f"the update of step {trainer.global_step - 1} made the weights NaN or infinite"
            raise _diverged(trainer, what, cause(pl_module, optimizer))


def _finite(tensors: Iterable[torch.Tensor]) -> bool:
    with torch.no_grad():
        return all(bool(t.isfinite().all()) for t in tensors)


def _diverged(trainer: L.Trainer, what: str, cause_: str) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"Training diverged in epoch {trainer.current_epoch}: {what}. Stopped; no checkpoint of it is written. "
        f"{cause_}."
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
