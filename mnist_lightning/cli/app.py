"""``python train.py``: LightningCLI with this project's defaults and safety checks.

Defaults (all overridable from the command line or YAML): LitLogReg on MNIST, TensorBoard logs in
``lightning_logs/version_N/``, a best checkpoint (``val/acc``) plus a ``last.ckpt`` refreshed every epoch and
every N steps, a fixed seed, ``accelerator=auto``, CPU threads chosen per model (``--torch_threads auto``).
"""

from __future__ import annotations

import importlib.util
import sys
from argparse import ArgumentError
from pathlib import Path
from typing import Any, Literal

import torch
from jsonargparse import Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from mnist_lightning.callbacks import (
    ClassReport,
    CSVPredictionWriter,
    DivergenceGuard,
    HParamsMetrics,
    LastCheckpoint,
    RNGState,
    RunFolder,
    SaveRunConfig,
    TensorBoardPictures,
)
from mnist_lightning.checkpoint import AtomicCheckpointIO, check_weights
from mnist_lightning.cli.choices import FIT_METRICS, NullProfiler, check_monitors, cpu_threads, switch_callbacks
from mnist_lightning.cli.exit import HeldLines, own_error
from mnist_lightning.cli.parser import MNISTArgumentParser, check_config_files, named_subcommand
from mnist_lightning.cli.resume import ResumePlan, RunSettings, blame, final_value, plan_resume
from mnist_lightning.cli.run_folders import (
    DEFAULT_LOGGER,
    FOLLOW_ROOT,
    continue_run_in,
    follows_root,
    logger_specs,
    run_folder_without_logger,
)
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.errors import CheckpointError, ConfigError, one_line
from mnist_lightning.models import LitClassifier, import_path
from mnist_lightning.runlock import lock_run

OPTIONAL_CALLBACKS = {  # on by default; `--pictures null` (etc.) switches one off
    "pictures": TensorBoardPictures,
    "class_report": ClassReport,
    "lr_monitor": LearningRateMonitor,
    "prediction_writer": CSVPredictionWriter,
}


class MNISTCLI(LightningCLI):
    """LightningCLI for this project; see the module docstring for its defaults."""

    def __init__(self, args: ArgsType = None, run: bool = True) -> None:
        self._named = named_subcommand(sys.argv[1:] if args is None else args)
        self._parsers: list[LightningArgumentParser] = []  # one per subcommand, filled by add_arguments_to_parser
        self._callback_keys: list[str] = []  # the callbacks this CLI adds as options of their own
        self._plan: ResumePlan | None = None  # what --ckpt_path brings, decided once in parse_arguments
        self._followers: list[Namespace] = []  # logger specs whose save_dir follows --trainer.default_root_dir
        self._held: HeldLines | None = None  # Lightning's set-up lines, shown once nothing more is refused
        try:
            self._init(args, run)
        finally:
            self._show_held(False)  # a refusal: its line is the only one

    def _init(self, args: ArgsType, run: bool) -> None:
        super().__init__(
            model_class=LitClassifier,
            datamodule_class=MNISTDataModule,
            subclass_mode_model=True,
            parser_class=MNISTArgumentParser,
            seed_everything_default=42,
            save_config_callback=SaveRunConfig,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={
                "max_epochs": 12,
                "log_every_n_steps": 10,  # metrics are logged per epoch; this only silences a warning for short epochs
                "accelerator": "auto",
                "use_distributed_sampler": False,  # MNISTDataModule shards by rank itself, without padding
                "plugins": spec(AtomicCheckpointIO),
                "logger": DEFAULT_LOGGER,  # a default logger class; another one given by name inherits save_dir/name
                "callbacks": [DivergenceGuard(), HParamsMetrics(), RunFolder(), RNGState(), RunSettings()],  # always on
            },
            auto_configure_optimizers=False,
            load_from_checkpoint_support=False,
            args=args,
            run=run,
        )

    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]
        """LightningCLI's subcommands, or only the one the command line names: building a subcommand's parser
        (the signatures of the Trainer, models, data module and callbacks) is a visible share of start-up
        (bench/RESULTS.md, start-up), and a run uses one. Without a subcommand (``--help``, a typo) every one is
        built, so that help and errors list them all."""
        every = LightningCLI.subcommands()
        return {self._named: every[self._named]} if self._named in every else every

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        self._parsers.append(parser)
        parser.set_defaults({"model": {"class_path": "mnist_lightning.LitLogReg"}})
        parser.add_argument(
            "--torch_threads",
            type=int | Literal["auto"],
            default="auto",
            help="CPU threads per process; auto: 1 for the linear models (robust when cores are shared), every "
            "usable core (shared among the processes of a multi-device CPU run) for LitCNN",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint", subclass_mode=True, required=False)
        best = {"monitor": "val/acc", "mode": "max", "filename": "epoch{epoch:02d}-val_acc{val/acc:.4f}"}
        parser.set_defaults({"checkpoint": spec(ModelCheckpoint, **best, auto_insert_metric_name=False)})
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        for key, callback in OPTIONAL_CALLBACKS.items():
            parser.add_lightning_class_args(callback, key, subclass_mode=True, required=False)
            parser.set_defaults({key: spec(callback)})
        if not self._callback_keys:
            self._callback_keys += ["checkpoint", "last_checkpoint", *OPTIONAL_CALLBACKS]

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse; with ``--ckpt_path``, plan the resume (the checkpoint read and vetted once) and parse again with
        the checkpoint's values as defaults.

        The second parse is unavoidable: which checkpoint to read is known only from the parsed options
        (``--ckpt_path best|last`` and the runs folder can come from config files, ``--trainer.default_root_dir``
        and the logger), and the checkpoint's values must rank below every option and config file the user gave,
        which jsonargparse applies in the order given: only a parse with them as defaults keeps that order.
        Without ``--ckpt_path`` the command line is parsed once.
        """
        check_config_files(sys.argv[1:] if args is None else args)
        self._parse_arguments(parser, args)
        self._held = HeldLines()  # from the seed on, until instantiate_trainer has refused what it refuses

    def _parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        given_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if given_path is not None and not str(given_path).strip():
            raise ConfigError("--ckpt_path got an empty name: give best, last or a .ckpt file")
        if not given_path:
            return
        given = self.config[subcommand]
        plan = plan_resume(subcommand, given)
        for subcommand_parser in self._parsers:
            subcommand_parser.set_defaults(plan.parser_defaults())
        self._parse_with_checkpoint_values(parser, args, plan)
        config = self.config[subcommand]
        config.ckpt_path, config.weights_only = str(plan.path), True
        plan.fill_nulls(config)
        plan.check(config, given, subcommand)
        if plan.run is not None:
            continue_run_in(plan.run.name, config)
        self._plan = plan

    def _parse_with_checkpoint_values(self, parser: LightningArgumentParser, args: ArgsType, plan: ResumePlan) -> None:
        """Parse again (``parser.parse_args``, not LightningCLI's ``parse_arguments``, which warns about ``args``
        given besides ``sys.argv``); a value the parser refuses now came from the checkpoint."""
        parsers = [parser, *self._parsers]
        for each in parsers:
            each.exit_on_error = False
        try:
            self.config = parser.parse_object(args) if isinstance(args, dict | Namespace) else parser.parse_args(args)
        except ArgumentError as err:
            message = one_line(str(err))
            blamed = blame(message, plan.values)
            raise CheckpointError(blamed or f"the checkpoint ({plan.path}) brings a refused value: {message}") from None
        finally:
            for each in parsers:
                each.exit_on_error = True

    def _parse_ckpt_path(self) -> None:
        """Nothing to do: :meth:`parse_arguments` already took the checkpoint's settings, vetted.

        LightningCLI's own version reads the checkpoint a second time and hands its raw hyperparameters to
        jsonargparse, which imports every class path and calls every function name in them (a checkpoint is
        data, not code). Private, with no public way to skip it (``adapt_checkpoint_hparams`` runs after the
        read): tests/integration/test_library_contract.py guards it.
        """

    def _resolve_save_dirs(self, config: Namespace) -> None:
        root = config.trainer.default_root_dir or "."
        for logger in logger_specs(config):
            if follows_root(logger.init_args.get("save_dir")):
                logger.init_args.save_dir = root
                self._followers.append(logger)

    def before_instantiate_classes(self) -> None:
        config = self._subcommand_config(self.config)
        torch.set_num_threads(cpu_threads(config))
        max_epochs = config.trainer.max_epochs
        if max_epochs is not None and (max_epochs == 0 or max_epochs < -1):
            raise ConfigError(f"--trainer.max_epochs must be >= 1 (or -1 for no limit), got {max_epochs}")
        _check_accelerator(str(config.trainer.accelerator))
        init_from = final_value(config, "model.init_from")
        if self.subcommand == "fit" and init_from and not config.get("ckpt_path") and not Path(init_from).is_file():
            raise ConfigError(
                f"--model.init_from {init_from}: no such file; pass the .ckpt file of a trained run "
                "(e.g. lightning_logs/version_0/checkpoints/last.ckpt)"
            )
        self._resolve_save_dirs(config)

    def instantiate_classes(self) -> None:
        """LightningCLI's; then the config that ``config.yaml`` records is put back as the user gave it.

        The logger's ``save_dir`` keeps following ``--trainer.default_root_dir`` and a resumed run records no
        ``ckpt_path``/``version``: ``fit --config <run>/config.yaml --trainer.default_root_dir other`` trains a
        new run under ``other``. A value the checkpoint brought that a class refuses is blamed on the checkpoint.
        """
        try:
            super().instantiate_classes()
        except Exception as err:  # jsonargparse wraps a class's refusal in its own ValueError
            refused = own_error(err)
            if not isinstance(refused, ConfigError):
                raise
            plan = self._plan
            blamed = blame(str(refused), plan.kept(self._subcommand_config(self.config))) if plan else None
            if blamed is None:
                raise ConfigError(as_option(str(refused), self._subcommand_config(self.config))) from None
            raise CheckpointError(blamed) from None
        config = self._subcommand_config(self.config)
        for logger in self._followers:
            logger.init_args.save_dir = FOLLOW_ROOT
        if self._plan is not None and self._plan.run is not None:
            config.ckpt_path = None
            for logger in logger_specs(config):
                if logger.init_args.get("version") == self._plan.run.name:
                    logger.init_args.version = None

    def _subcommand_config(self, config: Namespace) -> Namespace:
        """The running subcommand's part of ``config`` (all of it without subcommands)."""
        return config.get(str(self.subcommand), config) if self.subcommand else config

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """LightningCLI's, minus the callbacks switched off with ``null`` (see :func:`.choices.switch_callbacks`)
        and the LR monitor without a logger, with :class:`.choices.NullProfiler` unless a profiler is chosen; with
        a checkpoint, its weights are checked against the model this CLI built (nothing else is built for it) and
        the checkpoint is handed to the Trainer, which then does not read it again. ``fit`` refuses callbacks that
        monitor a metric no run logs, before training starts.

        ``_instantiate_trainer`` is LightningCLI's private step that adds the save-config callback and the
        trainer defaults' callbacks; no public hook takes a filtered callback list
        (tests/integration/test_library_contract.py).
        """
        config_init = self._subcommand_config(self.config_init)
        trainer_kwargs = {**(config_init.get("trainer") or {}), **kwargs}
        plan = self._plan
        run = plan.run if plan is not None else None
        if plan is not None:
            check_weights(self.model, plan.checkpoint, f", or an option given changes the model's shape ({plan.path})")
        own = [config_init.get(key) for key in self._callback_keys]
        callbacks = switch_callbacks(self.subcommand, trainer_kwargs, own, resumed=run is not None)
        if trainer_kwargs.get("profiler") is None:
            trainer_kwargs["profiler"] = NullProfiler()
        no_logger = trainer_kwargs.get("logger") is False or trainer_kwargs.get("logger") == []
        if self.subcommand == "fit" and no_logger:  # every run its own folder, as with a logger
            folder = run or run_folder_without_logger(self._subcommand_config(self.config))
            trainer_kwargs["default_root_dir"] = str(folder)
        trainer = self._instantiate_trainer(trainer_kwargs, callbacks)
        if not trainer.loggers:
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, LearningRateMonitor)]
        if run is not None and not plan.config_named:  # its config.yaml stays the file that brings its callbacks back
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, SaveRunConfig)]
        if self.subcommand == "fit":
            check_monitors(trainer.callbacks, self._subcommand_config(self.config).get("model"), FIT_METRICS)
        if plan is not None and isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO):
            trainer.strategy.checkpoint_io.hand_over(plan.path, plan.checkpoint)
        if self.subcommand == "fit" and trainer.is_global_zero:
            lock_run(Path(trainer.logger.log_dir if trainer.logger is not None else trainer.default_root_dir))
        self._show_held(True)
        return trainer

    def _show_held(self, show: bool) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release(show)

    def after_fit(self) -> None:
        best = self._subcommand_config(self.config_init).get("checkpoint")
        log_dir = self.trainer.log_dir  # a collective call under DDP: every rank must make it
        if not self.trainer.is_global_zero or best is None or not best.best_model_path:
            return
        score = best.best_model_score
        shown = f"{score.item():.4f}" if score is not None else "n/a"
        print(f"Best checkpoint: {best.best_model_path} ({best.monitor} {shown}); logs in {log_dir}")


def as_option(message: str, config: Namespace) -> str:
    """A model's or data module's refusal (``lr must be ...``) said of the option that gave the value
    (``--model.lr must be ...``); other messages as they are.

    >>> as_option("lr must be positive", Namespace(model=Namespace(init_args=Namespace(lr=-1.0))))
    '--model.lr must be positive'
    """
    name = message.split(" ", 1)[0]
    for section in ("model", "data"):
        part = config.get(section)
        args = part.get("init_args") if section == "model" and isinstance(part, Namespace) else part
        if isinstance(args, Namespace) and name.isidentifier() and name in args:
            return f"--{section}.{message}"
    return message


def _check_accelerator(accelerator: str) -> None:
    """Say at once, in one line, that the machine has no such accelerator (Lightning raises deep in Trainer)."""
    available = {
        "gpu": torch.cuda.is_available() or torch.backends.mps.is_available(),
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "tpu": importlib.util.find_spec("torch_xla") is not None,
    }
    if not available.get(accelerator.lower(), True):
        raise ConfigError(
            f"--trainer.accelerator {accelerator}: this machine has none (torch {torch.__version__} sees no "
            f"{'CUDA or MPS device' if accelerator.lower() == 'gpu' else accelerator.upper() + ' device'} here); "
            "use --trainer.accelerator auto (the default: a GPU when there is one) or cpu"
        )


def spec(cls: type, **init_args: Any) -> dict[str, Any]:
    """A default instance of ``cls`` as the ``class_path``/``init_args`` a config file would give: jsonargparse's
    ``lazy_instance`` does the same but walks the whole call stack (``inspect.stack``) at every call.

    >>> spec(ModelCheckpoint, monitor="val/acc")
    {'class_path': 'lightning.pytorch.callbacks.ModelCheckpoint', 'init_args': {'monitor': 'val/acc'}}
    """
    return {"class_path": import_path(cls), **({"init_args": init_args} if init_args else {})}
