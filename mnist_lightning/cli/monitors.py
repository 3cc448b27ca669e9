"""Every metric a callback or scheduler monitors must be one a run logs: checked before training, not after an epoch."""

from __future__ import annotations

from collections.abc import Iterable

from jsonargparse import Namespace
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint

from mnist_lightning.errors import ConfigError

FIT_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc", "val/ece", "val/temperature", "hp/best_val_acc")
"""What a ``fit`` logs where callbacks can monitor it (``trainer.callback_metrics``): ``LitClassifier``'s
``log_dict`` and ``HParamsMetrics``; tests/test_cli.py checks it against a real fit."""
CHECKPOINT_EXTRAS = ("epoch", "step")
"""Lightning's ModelCheckpoint may also monitor these."""


def check_monitors(callbacks: Iterable[Callback], model_config: Namespace | None, logged: Iterable[str]) -> None:
    """Refuse, in one line, a callback or LR scheduler that monitors a metric no run logs."""
    logged, callbacks = tuple(logged), list(callbacks)
    rates = any(isinstance(callback, LearningRateMonitor) for callback in callbacks)  # logs lr-<Optimizer>
    for callback in callbacks:
        monitor = getattr(callback, "monitor", None)
        extras = CHECKPOINT_EXTRAS if isinstance(callback, ModelCheckpoint) else ()
        known = monitor in (*logged, *extras) or (rates and str(monitor).startswith("lr-"))
        if isinstance(monitor, str) and not known:
            name = type(callback).__name__
            raise ConfigError(
                f"{name} monitors {monitor!r}, which no run logs: a fit logs {', '.join(logged)}"
                f"{' (and epoch, step)' if extras else ''}; set its monitor to one of them"
            )
    scheduler = (model_config or Namespace()).get("init_args", Namespace()).get("scheduler")
    if isinstance(scheduler, Namespace | dict) and "ReduceLROnPlateau" in str(scheduler.get("class_path")):
        init_args = scheduler.get("init_args") or {}
        monitor = init_args.get("monitor", "val/loss") or "val/loss"
        if monitor not in logged:
            raise ConfigError(f"--model.scheduler.monitor {monitor!r}: no run logs it; a fit logs {', '.join(logged)}")
