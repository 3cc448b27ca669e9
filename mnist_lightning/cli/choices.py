"""Which callbacks a Trainer gets: the ones switched off with ``null`` go, and those a subcommand cannot use."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import (
    Callback,
    Checkpoint,
    LearningRateFinder,
    ModelCheckpoint,
    ProgressBar,
    TQDMProgressBar,
)
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from mnist_lightning.callbacks import ClassReport, CSVPredictionWriter, LastCheckpoint

ONLY_IN: dict[type[Callback], str] = {ClassReport: "test", CSVPredictionWriter: "predict"}
"""Callbacks that act in one subcommand alone. Lightning calls every callback a Trainer holds at every hook of every
step, whether it acts or not, so the others' Trainers do without them (bench/RESULTS.md, epoch section)."""

PROGRESS_REFRESH_STEPS = 10
"""Lightning's progress bar redraws after every step by default, a noticeable share of a short epoch (see
bench/RESULTS.md). Every 10 steps it still moves several times a second (pass your own ``TQDMProgressBar``)."""


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
