"""What ends a run of LightningCLI, for ``train.py`` and the trials of ``tune``: the project's error behind the
libraries' wrappers, the library warnings no user can act on, and a fast exit. The exit-code rule itself is
:mod:`mnist_lightning.commands.runner`'s."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import warnings
from typing import NoReturn

from lightning.fabric.utilities.exceptions import MisconfigurationException

from mnist_lightning.callbacks.divergence import diverged_in_step
from mnist_lightning.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    TrainingDivergedError,
    TrainingInterruptedError,
)
from mnist_lightning.fileio import WriteError

OWN_ERRORS = (ConfigError, CheckpointError, DataError, TrainingDivergedError, TrainingInterruptedError, WriteError)
"""The errors whose message tells a user what to do: a command prints them as one line, without a traceback."""

LIBRARY_NOISE = (  # warnings raised inside the libraries that no user action can fix
    r".*isinstance\(treespec, LeafSpec\)",
    r"(?s).*was deprecated in v4\.\d+\.\d+ and will be removed in v5",  # jsonargparse API that Lightning calls
    r"Couldn't infer the batch indices",  # predict batches carry their own indices (CSVPredictionWriter)
    # the data module resumes its loader mid-epoch exactly (its checkpoint state holds the position), which
    # Lightning's check for loaders with their own state_dict cannot see
    r"You're resuming from a checkpoint that ended before the epoch ended",
    # validate/test/predict leave out the checkpoint callbacks on purpose (restoring one's state only made it warn
    # that its folder changed), and Lightning then asks for them on every --ckpt_path run
    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided",
)


def not_an_advert(record: logging.LogRecord) -> bool:
    """Lightning's "Tip" lines advertise other products of its maker (a hosted logger, a model registry) in every
    run's output, before the line a user needs; they are dropped, its other messages kept."""
    return not str(record.msg).startswith("💡 Tip:")


def silence_library_noise() -> None:
    for message in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", message=message)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not_an_advert not in rank_zero.filters:
        rank_zero.addFilter(not_an_advert)


STARTUP_LOGGERS = ("lightning.fabric.utilities.seed", "lightning.pytorch.utilities.rank_zero")
"""Where Lightning says "Seed set to 42" and "GPU available: ..." while a run is set up."""


class HeldLines(logging.Filter):
    """Lightning's set-up lines, held back while a run's settings may still be refused and shown once they are
    all accepted: a refusal of bad input is then the only line, not the last of four."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.loggers = [logging.getLogger(name) for name in STARTUP_LOGGERS]
        for logger in self.loggers:
            logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False

    def release(self, show: bool) -> None:
        """Stop holding; ``show``: emit what was held (the run goes on), else drop it (it was refused)."""
        for logger in self.loggers:
            logger.removeFilter(self)
        held, self.records = self.records, []
        for record in held if show else []:
            logging.getLogger(record.name).handle(record)


def own_error(err: BaseException | None) -> Exception | None:
    """The project's error behind ``err``, also when jsonargparse or Lightning wrapped it in their own, or an
    optimizer's step failed on an overflowing value (then as :class:`TrainingDivergedError`)."""
    seen = set()
    first = err
    while err is not None and id(err) not in seen:
        if isinstance(err, OWN_ERRORS):
            return err
        if isinstance(err, MisconfigurationException):  # Lightning's word for a bad Trainer setting
            return ConfigError(str(err).strip().splitlines()[0])
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return diverged_in_step(first) if isinstance(first, Exception) else None


def exit_now(code: int) -> NoReturn:
    """Exit at once: everything a run writes is closed by then (the Trainer finalizes its loggers, checkpoints
    are fsynced); the atexit handlers still run, the slow freeing of every module does not.

    ``atexit._run_exitfuncs`` is private; no public call runs the handlers without the teardown
    (tests/integration/test_library_contract.py guards it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)
