"""What the CLI chooses for a run before anything trains: CPU threads per process, the Trainer's callbacks (those
switched off with ``null`` go, and those a subcommand cannot use) and profiler, and that every metric a callback or
scheduler monitors is one a fit logs (refused before training, not after an epoch)."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterable
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.callbacks import (
    Callback,
    Checkpoint,
    LearningRateFinder,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    TQDMProgressBar,
)
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from mnist_lightning.callbacks import ClassReport, CSVPredictionWriter, LastCheckpoint
from mnist_lightning.errors import ConfigError

ONLY_IN: dict[type[Callback], str] = {ClassReport: "test", CSVPredictionWriter: "predict"}
"""Callbacks that act in one subcommand alone. Lightning calls every callback a Trainer holds at every hook of every
step, whether it acts or not, so the others' Trainers do without them (docs/speed-and-robustness.md)."""

PROGRESS_REFRESH_STEPS = 10
"""Lightning's progress bar redraws after every step by default, a noticeable share of a short epoch. Every 10
steps it still moves several times a second (pass your own ``TQDMProgressBar``)."""


def switch_callbacks(
    subcommand: str | None, trainer_kwargs: dict[str, Any], callbacks: list[Callback | None], resumed: bool
) -> list[Callback]:
    """The project's callbacks to add, with ``trainer_kwargs`` adjusted in place to match.

    ``--trainer.enable_checkpointing false`` drops the checkpoint callbacks (Lightning refuses a ModelCheckpoint
    then), and so do ``validate``/``test``/``predict``: they train nothing, and restoring a checkpoint's
    ModelCheckpoint state into one with another folder only warns ("The dirpath has changed"). ``--checkpoint
    null`` keeps ``last.ckpt`` but writes no best checkpoint, so Lightning must not add its own default one.
    The callbacks of :data:`ONLY_IN` go from the other subcommands' Trainers.
    """
    kept = [callback for callback in callbacks if callback is not None and _acts_in(callback, subcommand)]
    if trainer_kwargs.get("enable_checkpointing") is False or subcommand not in (None, "fit"):
        kept = [c for c in kept if not isinstance(c, ModelCheckpoint | LastCheckpoint)]
        given = trainer_kwargs.get("callbacks")
        if isinstance(given, list) and subcommand not in (None, "fit"):
            trainer_kwargs["callbacks"] = [c for c in given if not isinstance(c, Checkpoint)]
    if resumed:
        trainer_kwargs["callbacks"] = without_lr_finder(trainer_kwargs.get("callbacks"))
    every = [*kept, *(trainer_kwargs.get("callbacks") or [])]
    if not any(isinstance(c, Checkpoint) for c in every):
        trainer_kwargs["enable_checkpointing"] = False
    wants_bar = trainer_kwargs.get("enable_progress_bar") is not False
    if wants_bar and not any(isinstance(c, ProgressBar) for c in every):
        kept.append(TQDMProgressBar(refresh_rate=PROGRESS_REFRESH_STEPS))
    return kept


def without_lr_finder(callbacks: Any) -> Any:
    """A resumed run keeps the learning rate its LR finder chose when the run started (the checkpoint
    brings it): running the finder again would change the run midway."""
    if not isinstance(callbacks, list) or not any(isinstance(c, LearningRateFinder) for c in callbacks):
        return callbacks
    rank_zero_info("LearningRateFinder: not run again on resume; the run keeps the learning rate it found")
    return [c for c in callbacks if not isinstance(c, LearningRateFinder)]


def _acts_in(callback: Callback, subcommand: str | None) -> bool:
    """Whether ``callback`` does anything in ``subcommand`` (every callback may, without one)."""
    only = next((name for cls, name in ONLY_IN.items() if isinstance(callback, cls)), None)
    return only is None or subcommand is None or only == subcommand


def cpu_threads(config: Namespace) -> int:
    """``--torch_threads``, with ``auto`` resolved by the model class's ``cpu_threads``, within the cores this
    process may use and within ``OMP_NUM_THREADS`` when it is set (the usual cap where several processes share a
    machine: oversubscribed cores make every one of them slower)."""
    if config.torch_threads != "auto":
        if config.torch_threads < 1:
            raise ConfigError(f"--torch_threads must be >= 1 (or auto), got {config.torch_threads}")
        return config.torch_threads
    module, _, name = str(config.model.get("class_path", "")).rpartition(".")
    try:
        wanted = getattr(importlib.import_module(module), name).cpu_threads
    except (ImportError, ValueError, AttributeError):
        wanted = 1
    devices = config.trainer.get("devices")
    processes = devices if isinstance(devices, int) and devices > 0 else 1
    processes = int(os.environ.get("LOCAL_WORLD_SIZE") or processes)  # torchrun's processes on this machine
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    capped = os.environ.get("OMP_NUM_THREADS", "")
    usable = min(usable, int(capped)) if capped.isdigit() and int(capped) > 0 else usable
    return max(1, usable // processes if wanted is None else min(wanted, usable))


class NullProfiler(PassThroughProfiler):
    """Records nothing, like Lightning's default ``PassThroughProfiler``, at a fraction of its cost per step.

    Lightning enters ``trainer.profiler.profile(name)`` around every hook of every callback, the model and the
    strategy, several times per callback at every training step; the default's ``profile`` is a generator-based
    context manager that does nothing yet is built and run at each of those calls. This one hands back one shared
    ``nullcontext``. The CLI uses it when no ``--trainer.profiler`` is given (docs/speed-and-robustness.md).
    """

    _NOTHING = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:  # type: ignore[override]
        return self._NOTHING


FIT_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc", "val/ece", "val/temperature", "hp/best_val_acc")
"""What a ``fit`` logs where callbacks can monitor it (``trainer.callback_metrics``): ``LitClassifier``'s
``log_dict`` and ``HParamsMetrics``; tests/integration/test_cli.py checks it against a real fit."""
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
