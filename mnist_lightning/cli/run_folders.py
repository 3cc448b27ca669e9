"""Where a run's folder is: the logger's ``save_dir/name/version_N``, or one chosen the same way without a logger."""

from __future__ import annotations

import os
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.utilities.rank_zero import rank_zero_only

FOLLOW_ROOT = "<trainer.default_root_dir>"
"""The default logger's ``save_dir``: a marker, not a folder, that the CLI replaces by ``--trainer.default_root_dir``
(``.`` when that is not set) before the logger is built and puts back in the run's ``config.yaml``, so that the
file reruns under another root. Not jsonargparse's ``${...}`` syntax: this project enables no interpolation."""
FOLLOW_ROOT_BEFORE = "$" + "{trainer.default_root_dir}"
"""The same marker in the ``config.yaml`` files of earlier versions."""
RUN_FOLDER_ENV = "MNIST_LIGHTNING_RUN_FOLDER"
"""Rank 0 hands the run folder it chose (runs without a logger) to the ranks it launches."""
DEFAULT_LOGGER = {
    "class_path": "mnist_lightning.callbacks.tensorboard.TensorBoardLoggerWithoutEpoch",
    "init_args": {"save_dir": FOLLOW_ROOT, "name": "lightning_logs", "default_hp_metric": False},
}


def logger_specs(config: Namespace) -> list[Namespace]:
    """The configured loggers as ``class_path``/``init_args`` namespaces; ``true`` becomes the default logger."""
    logger = config.trainer.logger
    if logger is True:
        config.trainer.logger = logger = Namespace(
            class_path=DEFAULT_LOGGER["class_path"], init_args=Namespace(**DEFAULT_LOGGER["init_args"])
        )
    loggers = logger if isinstance(logger, list) else [logger]
    return [spec for spec in loggers if isinstance(spec, Namespace) and "init_args" in spec]


def runs_dir(config: Namespace) -> Path:
    """Where this run's logger keeps its ``version_N`` folders."""
    specs = logger_specs(config)
    init = specs[0].init_args if specs else Namespace()
    root = config.trainer.default_root_dir or "."
    save_dir = init.get("save_dir")
    return Path(root if follows_root(save_dir) else save_dir) / (init.get("name") or "lightning_logs")


def follows_root(save_dir: object) -> bool:
    """Whether a logger's ``save_dir`` is the marker that follows ``--trainer.default_root_dir``."""
    return save_dir in (None, FOLLOW_ROOT, FOLLOW_ROOT_BEFORE)


def continue_run_in(version: str, config: Namespace) -> None:
    """Resume logging into the resumed run's own folder instead of a new ``version_N``."""
    for spec in logger_specs(config):
        if "version" in spec.init_args and spec.init_args.get("version") is None:
            spec.init_args.version = version


def launched_as_rank_zero() -> bool:
    """Whether this process is global rank 0, known before any Trainer exists from what the launchers set:
    torchrun's ``RANK``, SLURM's ``SLURM_PROCID``, ``LOCAL_RANK`` and ``NODE_RANK`` of Lightning's own launcher."""
    return rank_zero_only.rank == 0 and int(os.environ.get("NODE_RANK") or 0) == 0


def run_folder_without_logger(config: Namespace) -> Path:
    """A ``version_N`` folder, chosen as TensorBoard chooses it, for a run that has no logger.

    Only global rank 0 chooses (and creates) it. Ranks that Lightning launches inherit the choice; ranks
    that torchrun or SLURM start on other nodes cannot, and need none: Lightning broadcasts rank 0's
    folder wherever one is used (``trainer.log_dir``, the checkpoint folder).
    """
    if not launched_as_rank_zero():
        return Path(os.environ.get(RUN_FOLDER_ENV) or runs_dir(config))
    folders = runs_dir(config)
    folders.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name[8:]) for p in folders.glob("version_*") if p.name[8:].isdigit()]
    number = max(taken, default=-1) + 1
    while True:
        try:
            (folders / f"version_{number}").mkdir()
            break
        except FileExistsError:  # another run took it meanwhile
            number += 1
    folder = folders / f"version_{number}"
    os.environ[RUN_FOLDER_ENV] = str(folder)
    return folder
