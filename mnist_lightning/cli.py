"""``python train.py``: LightningCLI with this project's defaults and safety checks.

Defaults (all overridable from the command line or YAML): LitLogReg on MNIST, TensorBoard logs in
``lightning_logs/version_N/``, a best checkpoint (``val/acc``) plus a ``last.ckpt`` refreshed every epoch and
every N steps, a fixed seed, ``accelerator=auto``, CPU threads chosen per model (``--torch_threads auto``).
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal, NoReturn

import torch
from jsonargparse import Namespace, lazy_instance
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from mnist_lightning.callbacks import (
    ClassReport,
    CSVPredictionWriter,
    DivergenceGuard,
    HParamsMetrics,
    LastCheckpoint,
    TensorBoardPictures,
)
from mnist_lightning.checkpoints import AtomicCheckpointIO, model_class_for, read_checkpoint, resolve_checkpoint
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.errors import CheckpointError, ConfigError, DataError, TrainingDivergedError
from mnist_lightning.models import LitClassifier

LIBRARY_NOISE = (  # warnings raised inside the libraries that no user action can fix
    r".*isinstance\(treespec, LeafSpec\)",
    r"(?s).*was deprecated in v4\.\d+\.\d+ and will be removed in v5",  # jsonargparse API that Lightning calls
    r"Couldn't infer the batch indices",  # predict batches carry their own indices (CSVPredictionWriter)
)
RUN_DATA_KEYS = ("data_dir", "dataset", "val_size", "seed", "normalize")
"""Data settings a checkpoint brings along, so that ``validate``/``test`` see the split training saw."""


class MNISTArgumentParser(LightningArgumentParser):
    """No prefix abbreviations (``--trainer.max_epoch`` is an error, not ``max_epochs``); short errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {message.strip()}\n(run `{prog} --help` for the accepted options)\n")
        sys.exit(2)


class MNISTCLI(LightningCLI):
    """LightningCLI for this project; see the module docstring for its defaults."""

    def __init__(self, args: ArgsType = None, run: bool = True) -> None:
        super().__init__(
            model_class=LitClassifier,
            datamodule_class=MNISTDataModule,
            subclass_mode_model=True,
            parser_class=MNISTArgumentParser,
            seed_everything_default=42,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={
                "max_epochs": 12,
                "log_every_n_steps": 10,  # metrics are logged per epoch; this only silences a warning for short epochs
                "accelerator": "auto",
                "use_distributed_sampler": False,  # MNISTDataModule shards by rank itself, without padding
                "plugins": lazy_instance(AtomicCheckpointIO),
                "callbacks": [DivergenceGuard(), HParamsMetrics()],  # always on: not configurable
            },
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults({"model": {"class_path": "mnist_lightning.LitLogReg"}})
        parser.add_argument(
            "--torch_threads",
            type=int | Literal["auto"],
            default="auto",
            help="CPU threads per process; auto: 1 for the linear models (robust when cores are shared), every "
            "usable core (shared among the processes of a multi-device CPU run) for LitCNN",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "epoch{epoch:02d}-val_acc{val/acc:.4f}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        optional_callbacks = {  # on by default; `--pictures null` (etc.) switches one off
            "pictures": TensorBoardPictures,
            "class_report": ClassReport,
            "lr_monitor": LearningRateMonitor,
            "prediction_writer": CSVPredictionWriter,
        }
        for key, callback in optional_callbacks.items():
            parser.add_lightning_class_args(callback, key, subclass_mode=True, required=False)
            parser.set_defaults({key: lazy_instance(callback)})

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse, then resolve ``--ckpt_path best|last`` and vet the checkpoint before anything reads it."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if not subcommand or not self.config[subcommand].get("ckpt_path"):
            return
        config = self.config[subcommand]
        if config.get("weights_only") is False:
            raise ConfigError(
                "--weights_only false is refused: it lets a checkpoint run arbitrary code when loaded. "
                "Checkpoints written by this project load with weights_only (the default here)."
            )
        config.weights_only = True
        ckpt_path = str(config.ckpt_path)
        if ckpt_path in ("best", "last"):
            path, notes = resolve_checkpoint(ckpt_path, self._runs_dir(config))
            for note in notes:
                rank_zero_info(f"WARNING: {note}")
            rank_zero_info(f"--ckpt_path {ckpt_path}: {path}")
            config.ckpt_path = ckpt_path = str(path)
            if subcommand == "fit":
                self._continue_run_in(path.parent.parent.name, config)
        checkpoint = read_checkpoint(ckpt_path)
        model_class_for(checkpoint.get("hyper_parameters", {}))
        self._apply_run_data_settings(parser, args, subcommand, checkpoint)

    def _apply_run_data_settings(
        self, parser: LightningArgumentParser, args: ArgsType, subcommand: str, checkpoint: dict[str, Any]
    ) -> None:
        """Use the checkpoint's data settings as defaults (explicit arguments still win), then re-parse."""
        saved = checkpoint.get("datamodule_hyper_parameters", {})
        defaults = {f"data.{key}": saved[key] for key in RUN_DATA_KEYS if key in saved}
        if not defaults:
            return
        self._subcommand_parsers[subcommand].set_defaults(defaults)
        resolved = self.config[subcommand]
        super().parse_arguments(parser, args)
        for key in ("ckpt_path", "weights_only", "trainer"):
            self.config[subcommand][key] = resolved[key]

    @staticmethod
    def _logger_spec(config: Namespace) -> Namespace:
        return Namespace(
            class_path="lightning.pytorch.loggers.TensorBoardLogger",
            init_args=Namespace(
                save_dir=config.trainer.default_root_dir or ".", name="lightning_logs", default_hp_metric=False
            ),
        )

    def _runs_dir(self, config: Namespace) -> Path:
        """Where this run's logger keeps its ``version_N`` folders."""
        logger = config.trainer.logger
        if logger in (None, True):
            logger = self._logger_spec(config)
        init = getattr(logger, "init_args", None) or Namespace()
        root = config.trainer.default_root_dir or "."
        return Path(init.get("save_dir") or root) / (init.get("name") or "lightning_logs")

    def _continue_run_in(self, version: str, config: Namespace) -> None:
        """Resume logging into the resumed run's own folder instead of a new ``version_N``."""
        if config.trainer.logger in (None, True):
            config.trainer.logger = self._logger_spec(config)
        logger = config.trainer.logger
        if isinstance(logger, Namespace) and "init_args" in logger and logger.init_args.get("version") is None:
            logger.init_args.version = version

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        torch.set_num_threads(cpu_threads(config))
        max_epochs = config.trainer.max_epochs
        if max_epochs is not None and (max_epochs == 0 or max_epochs < -1):
            raise ConfigError(f"--trainer.max_epochs must be >= 1 (or -1 for no limit), got {max_epochs}")
        if config.trainer.logger in (None, True):
            config.trainer.logger = self._logger_spec(config)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """LightningCLI's, minus the callbacks switched off with ``null`` (and the LR monitor without a logger)."""
        keys = self._parser(self.subcommand).callback_keys
        callbacks = [callback for key in keys if (callback := self._get(self.config_init, key)) is not None]
        trainer = self._instantiate_trainer({**self._get(self.config_init, "trainer", default={}), **kwargs}, callbacks)
        if not trainer.loggers:
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, LearningRateMonitor)]
        return trainer

    def after_fit(self) -> None:
        best = self._get(self.config_init, "checkpoint")
        log_dir = self.trainer.log_dir  # a collective call under DDP: every rank must make it
        if not self.trainer.is_global_zero or best is None or not best.best_model_path:
            return
        score = best.best_model_score
        shown = f"{score.item():.4f}" if score is not None else "n/a"
        print(f"Best checkpoint: {best.best_model_path} ({best.monitor} {shown}); logs in {log_dir}")


def cpu_threads(config: Namespace) -> int:
    """``--torch_threads``, with ``auto`` resolved by the model class's ``cpu_threads``."""
    if config.torch_threads != "auto":
        return max(1, config.torch_threads)
    module, _, name = str(config.model.get("class_path", "")).rpartition(".")
    try:
        wanted = getattr(importlib.import_module(module), name).cpu_threads
    except (ImportError, ValueError, AttributeError):
        wanted = 1
    devices = config.trainer.get("devices")
    processes = devices if isinstance(devices, int) and devices > 0 else 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, usable // processes if wanted is None else min(wanted, usable))


def main(args: ArgsType = None) -> None:
    """Run the CLI; the project's own errors print one clear message instead of a traceback.

    Called without ``args`` (from ``train.py``) it ends the process itself, skipping the interpreter's
    teardown: freeing torch's and Lightning's modules takes 1.5-2 s, a fifth of the default run.
    """
    for message in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", message=message)
    code = 0
    try:
        MNISTCLI(args=args)
    except Exception as err:
        own = _own_error(err)
        if own is None:
            raise
        sys.stderr.write(f"error: {own}\n")
        code = 2 if isinstance(own, ConfigError) else 1
    except SystemExit as exit_:  # --help, --print_config, argument errors
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    if args is not None:
        if code:
            sys.exit(code)
        return
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Exit at once: everything a run writes is closed by then (the Trainer finalizes its loggers, checkpoints
    are fsynced); the atexit handlers still run, the slow freeing of every module does not."""
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _own_error(err: BaseException | None) -> Exception | None:
    """The project's error behind ``err``, also when jsonargparse or Lightning wrapped it in their own."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, (ConfigError, DataError, CheckpointError, TrainingDivergedError)):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
