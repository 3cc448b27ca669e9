"""``python train.py``: LightningCLI with this project's defaults and safety checks.

Defaults (all overridable from the command line or YAML): LitLogReg on MNIST, TensorBoard logs in
``lightning_logs/version_N/``, a best checkpoint (``val/acc``) plus a ``last.ckpt`` refreshed every epoch and
every N steps, a fixed seed, ``accelerator=auto``, CPU threads chosen per model (``--torch_threads auto``).
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Literal, NoReturn

import torch
import yaml
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import (
    Checkpoint,
    LearningRateFinder,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    TQDMProgressBar,
)
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_only

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
from mnist_lightning.checkpoint import (
    AtomicCheckpointIO,
    VettedModel,
    build_vetted,
    read_checkpoint,
    resolve_checkpoint,
    vet_data,
    vet_model,
)
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    TrainingDivergedError,
    TrainingInterruptedError,
    one_line,
)
from mnist_lightning.fileio import WriteError
from mnist_lightning.models import ALLOWLIST, MODEL_NAMES, LitClassifier, import_path
from mnist_lightning.runlock import lock_run, release_runs

LIBRARY_NOISE = (  # warnings raised inside the libraries that no user action can fix
    r".*isinstance\(treespec, LeafSpec\)",
    r"(?s).*was deprecated in v4\.\d+\.\d+ and will be removed in v5",  # jsonargparse API that Lightning calls
    r"Couldn't infer the batch indices",  # predict batches carry their own indices (CSVPredictionWriter)
    # the data module resumes its loader mid-epoch exactly (its checkpoint state holds the position), which
    # Lightning's check for loaders with their own state_dict cannot see
    r"You're resuming from a checkpoint that ended before the epoch ended",
)
FOLLOW_ROOT = "${trainer.default_root_dir}"
"""A logger's ``save_dir`` that follows ``--trainer.default_root_dir`` (``.`` when that is not set)."""
RUN_DATA_KEYS = ("data_dir", "dataset", "val_size", "seed", "normalize")
"""Data settings a checkpoint brings along, so that ``validate``/``test`` see the split training saw."""
RESULT_SETTINGS = {
    "data": ("batch_size", "seed", "augment", "val_size", "normalize", "dataset"),
    "trainer": ("max_epochs", "max_steps", "accumulate_grad_batches", "precision", "gradient_clip_val"),
    "model": (),
}
"""Settings whose change makes a resumed run differ from an uninterrupted one (every model argument too)."""
PROGRESS_REFRESH_STEPS = 10
"""Lightning's progress bar redraws after every step by default: 0.28 ms a step, 8 % of the default run's epoch.
Every 10 steps it still moves several times a second (pass your own ``TQDMProgressBar`` to change it)."""
RUN_FOLDER_ENV = "MNIST_LIGHTNING_RUN_FOLDER"
"""Rank 0 hands the run folder it chose (runs without a logger) to the ranks it launches."""


class MNISTArgumentParser(LightningArgumentParser):
    """No prefix abbreviations (``--trainer.max_epoch`` is an error, not ``max_epochs``); one-line errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {with_hint(one_line(message))} (see `{prog} --help`)\n")
        sys.exit(2)


CLASS_OPTIONS = {
    "--model": ", ".join(MODEL_NAMES),
    "--model.optimizer": "a torch.optim class, e.g. SGD, Adam, AdamW, RMSprop",
    "--model.scheduler": "a torch.optim.lr_scheduler class, e.g. StepLR, CosineAnnealingLR, OneCycleLR, "
    "torch.optim.lr_scheduler.ReduceLROnPlateau, or null",
    "--trainer.logger": "TensorBoardLogger, CSVLogger, false",
}


def with_hint(line: str) -> str:
    """What to type instead, for the options that take a class."""
    option, _, said = line.partition(": ")
    missing = re.match(r"missing required argument\(s\) (\w+)", said)
    if missing:
        return f"{line} (add {option}.{missing.group(1)} VALUE)"
    if "is not a class this option takes" in said and option in CLASS_OPTIONS:
        return f"{line}; accepted: {CLASS_OPTIONS[option]}"
    return line


class MNISTCLI(LightningCLI):
    """LightningCLI for this project; see the module docstring for its defaults."""

    def __init__(self, args: ArgsType = None, run: bool = True) -> None:
        self._named = named_subcommand(sys.argv[1:] if args is None else args)
        self._parsers: list[LightningArgumentParser] = []  # one per subcommand, filled by add_arguments_to_parser
        self._resumed_run: Path | None = None  # the run folder `fit --ckpt_path` continues
        self._followers: list[Namespace] = []  # logger specs whose save_dir follows --trainer.default_root_dir
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
                "logger": {  # a default logger class; another one given by name inherits save_dir and name
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": FOLLOW_ROOT, "name": "lightning_logs", "default_hp_metric": False},
                },
                "callbacks": [DivergenceGuard(), HParamsMetrics(), RunFolder(), RNGState()],  # always on
            },
            auto_configure_optimizers=False,
            load_from_checkpoint_support=False,
            args=args,
            run=run,
        )

    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]
        """LightningCLI's subcommands, or only the one the command line names: building a subcommand's parser
        (the signatures of the Trainer, models, data module and callbacks) costs 0.1-0.2 s, and a run uses one.
        Without a subcommand (``--help``, a typo) every one is built, so that help and errors list them all."""
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
        optional_callbacks = {  # on by default; `--pictures null` (etc.) switches one off
            "pictures": TensorBoardPictures,
            "class_report": ClassReport,
            "lr_monitor": LearningRateMonitor,
            "prediction_writer": CSVPredictionWriter,
        }
        for key, callback in optional_callbacks.items():
            parser.add_lightning_class_args(callback, key, subclass_mode=True, required=False)
            parser.set_defaults({key: spec(callback)})

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
                self._resumed_run = path.parent.parent
                if launched_as_rank_zero():  # the other ranks are the same run, not a second writer
                    lock_run(self._resumed_run)  # refuse a second writer before anything is read or written
                self._continue_run_in(path.parent.parent.name, config)
        checkpoint = read_checkpoint(ckpt_path)
        model = vet_model(checkpoint.get("hyper_parameters"), ALLOWLIST)
        # the weights must fit the model they name, or the restore fails with a traceback
        build_vetted(model, checkpoint, ALLOWLIST)
        data = vet_data(checkpoint.get("datamodule_hyper_parameters"), RUN_DATA_KEYS)
        run_config = self._resumed_run / "config.yaml" if self._resumed_run is not None else None
        if args is None:
            args = sys.argv[1:]
        if run_config is not None and run_config.is_file() and isinstance(args, list | tuple):
            args = self._with_run_config(list(args), subcommand, run_config)
        else:
            run_config = None
        self._use_checkpoint_settings(parser, args, subcommand, model, data, keep_trainer=run_config is None)
        if run_config is not None:
            self._continue_run_in(self._resumed_run.name, self.config[subcommand])
            self._drop_repeated_callbacks(self.config[subcommand])
            self._check_changes(run_config, self.config[subcommand], checkpoint)

    @staticmethod
    def _drop_repeated_callbacks(config: Namespace) -> None:
        """``--trainer.callbacks+=X`` typed again on resume appends to the run's own ``X``: keep one of each."""
        callbacks = config.trainer.get("callbacks")
        if isinstance(callbacks, list):
            unique: list[Any] = []
            for spec in callbacks:
                if spec not in unique:
                    unique.append(spec)
            config.trainer.callbacks = unique

    @staticmethod
    def _with_run_config(args: list[str], subcommand: str, run_config: Path) -> list[str]:
        """``fit --ckpt_path last`` continues with the run's own settings: its ``config.yaml`` goes first, so
        that explicit options and config files still win."""
        at = args.index(subcommand) + 1 if subcommand in args else 0
        rank_zero_info(f"continuing with the settings of {run_config}")
        return [*args[:at], "--config", str(run_config), *args[at:]]

    @staticmethod
    def _check_changes(run_config: Path, config: Namespace, checkpoint: dict) -> None:
        """Say which settings differ from the run's; refuse to stretch a schedule that already ended."""
        saved = yaml.safe_load(run_config.read_text()) or {}
        changed = []
        for section, keys in RESULT_SETTINGS.items():
            before, now = saved.get(section) or {}, config.get(section) or Namespace()
            if section == "model":
                before, now = before.get("init_args") or {}, now.get("init_args") or Namespace()
                keys = tuple(key for key, value in before.items() if not isinstance(value, dict))
            for key in keys:
                value, current = before.get(key), now.get(key)
                if key in before and current != value and not isinstance(current, Namespace):
                    changed.append(f"{section}.{key} {value} -> {current}")
        if not changed:
            return
        schedules = checkpoint.get("lr_schedulers") or []
        length_changed = any(c.startswith(("trainer.max_epochs", "trainer.max_steps")) for c in changed)
        if length_changed and any(isinstance(s, dict) and s.get("total_steps") for s in schedules):
            raise ConfigError(
                f"{', '.join(changed)}: the run's learning-rate schedule was planned for its original length and "
                "reaches 0 at its end; resume without changing the run's length, or train a new run "
                "(fit without --ckpt_path) with the length you want"
            )
        rank_zero_info(
            f"WARNING: resuming {run_config.parent.name} with settings other than the run's ({'; '.join(changed)}): "
            "the result will differ from an uninterrupted run"
        )

    def _use_checkpoint_settings(
        self,
        parser: LightningArgumentParser,
        args: ArgsType,
        subcommand: str,
        model: VettedModel,
        data: dict,
        keep_trainer: bool = True,
    ) -> None:
        """The checkpoint's vetted model and data settings become defaults, then the arguments are parsed again:
        explicit options and config files still win, and a ``--model`` of another class is refused."""
        defaults = {"model": {"class_path": model.class_path, "init_args": model.init_args}}
        defaults.update({f"data.{key}": value for key, value in data.items()})
        for subcommand_parser in self._parsers:
            subcommand_parser.set_defaults(defaults)
        resolved = self.config[subcommand]
        super().parse_arguments(parser, args)
        for key in ("ckpt_path", "weights_only", *(("trainer",) if keep_trainer else ())):
            self.config[subcommand][key] = resolved[key]
        chosen = self.config[subcommand].model.class_path
        if chosen.rpartition(".")[2] != model.cls.__name__:
            raise ConfigError(
                f"--model {chosen.rpartition('.')[2]} does not match the checkpoint, which holds a "
                f"{model.cls.__name__}: leave --model out (the checkpoint brings its model) or pass another checkpoint"
            )

    def _parse_ckpt_path(self) -> None:
        """Nothing to do: :meth:`parse_arguments` already took the checkpoint's settings, vetted.

        LightningCLI's own version hands a checkpoint's raw hyperparameters to jsonargparse, which imports
        every class path and calls every function name in them (a checkpoint is data, not code).
        """

    @staticmethod
    def _logger_specs(config: Namespace) -> list[Namespace]:
        """The configured loggers as ``class_path``/``init_args`` namespaces; ``true`` is the default logger."""
        logger = config.trainer.logger
        if logger is True:
            config.trainer.logger = logger = Namespace(
                class_path="lightning.pytorch.loggers.TensorBoardLogger",
                init_args=Namespace(save_dir=FOLLOW_ROOT, name="lightning_logs", default_hp_metric=False),
            )
        loggers = logger if isinstance(logger, list) else [logger]
        return [spec for spec in loggers if isinstance(spec, Namespace) and "init_args" in spec]

    def _resolve_save_dirs(self, config: Namespace) -> None:
        root = config.trainer.default_root_dir or "."
        for spec in self._logger_specs(config):
            if spec.init_args.get("save_dir") == FOLLOW_ROOT:
                spec.init_args.save_dir = root
                self._followers.append(spec)

    def _runs_dir(self, config: Namespace) -> Path:
        """Where this run's logger keeps its ``version_N`` folders."""
        self._resolve_save_dirs(config)
        specs = self._logger_specs(config)
        init = specs[0].init_args if specs else Namespace()
        root = config.trainer.default_root_dir or "."
        return Path(init.get("save_dir") or root) / (init.get("name") or "lightning_logs")

    def _continue_run_in(self, version: str, config: Namespace) -> None:
        """Resume logging into the resumed run's own folder instead of a new ``version_N``."""
        for spec in self._logger_specs(config):
            if "version" in spec.init_args and spec.init_args.get("version") is None:
                spec.init_args.version = version

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        torch.set_num_threads(cpu_threads(config))
        max_epochs = config.trainer.max_epochs
        if max_epochs is not None and (max_epochs == 0 or max_epochs < -1):
            raise ConfigError(f"--trainer.max_epochs must be >= 1 (or -1 for no limit), got {max_epochs}")
        _check_accelerator(str(config.trainer.accelerator))
        self._resolve_save_dirs(config)

    def instantiate_classes(self) -> None:
        """LightningCLI's; then the config that ``config.yaml`` records is put back as the user gave it.

        The logger's ``save_dir`` keeps following ``--trainer.default_root_dir`` and a resumed run records no
        ``ckpt_path``/``version``: ``fit --config <run>/config.yaml --trainer.default_root_dir other`` trains a
        new run under ``other``.
        """
        super().instantiate_classes()
        config = self.config[self.subcommand] if self.subcommand else self.config
        for spec in self._followers:
            spec.init_args.save_dir = FOLLOW_ROOT
        if self._resumed_run is not None:
            config.ckpt_path = None
            for spec in self._logger_specs(config):
                if spec.init_args.get("version") == self._resumed_run.name:
                    spec.init_args.version = None

    def _run_folder_without_logger(self, config: Namespace) -> Path:
        """A ``version_N`` folder, chosen as TensorBoard chooses it, for a run that has no logger.

        Only global rank 0 chooses (and creates) it. Ranks that Lightning launches inherit the choice; ranks
        that torchrun or SLURM start on other nodes cannot, and need none: Lightning broadcasts rank 0's
        folder wherever one is used (``trainer.log_dir``, the checkpoint folder).
        """
        if self._resumed_run is not None:
            return self._resumed_run
        if not launched_as_rank_zero():
            return Path(os.environ.get(RUN_FOLDER_ENV) or self._runs_dir(config))
        runs_dir = self._runs_dir(config)
        runs_dir.mkdir(parents=True, exist_ok=True)
        taken = [int(p.name[8:]) for p in runs_dir.glob("version_*") if p.name[8:].isdigit()]
        number = max(taken, default=-1) + 1
        while True:
            try:
                (runs_dir / f"version_{number}").mkdir()
                break
            except FileExistsError:  # another run took it meanwhile
                number += 1
        folder = runs_dir / f"version_{number}"
        os.environ[RUN_FOLDER_ENV] = str(folder)
        return folder

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """LightningCLI's, minus the callbacks switched off with ``null`` (and the LR monitor without a logger).

        ``--trainer.enable_checkpointing false`` also drops this project's checkpoint callbacks (Lightning
        refuses a ModelCheckpoint then); ``--checkpoint null`` keeps ``last.ckpt`` but writes no best
        checkpoint, so Lightning must not add its own default one.
        """
        trainer_kwargs = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        keys = self._parser(self.subcommand).callback_keys
        callbacks = [callback for key in keys if (callback := self._get(self.config_init, key)) is not None]
        if trainer_kwargs.get("enable_checkpointing") is False:
            callbacks = [c for c in callbacks if not isinstance(c, (ModelCheckpoint, LastCheckpoint))]
        if self._resumed_run is not None:
            trainer_kwargs["callbacks"] = self._without_lr_finder(trainer_kwargs.get("callbacks"))
        every = [*callbacks, *(trainer_kwargs.get("callbacks") or [])]
        if not any(isinstance(c, Checkpoint) for c in every):
            trainer_kwargs["enable_checkpointing"] = False
        wants_bar = trainer_kwargs.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(c, ProgressBar) for c in every):
            callbacks.append(TQDMProgressBar(refresh_rate=PROGRESS_REFRESH_STEPS))
        no_logger = trainer_kwargs.get("logger") is False or trainer_kwargs.get("logger") == []
        if self.subcommand == "fit" and no_logger:  # every run its own folder, as with a logger
            config = self.config[self.subcommand]
            trainer_kwargs["default_root_dir"] = str(self._run_folder_without_logger(config))
        trainer = self._instantiate_trainer(trainer_kwargs, callbacks)
        if not trainer.loggers:
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, LearningRateMonitor)]
        if self.subcommand == "fit" and trainer.is_global_zero:
            lock_run(Path(trainer.logger.log_dir if trainer.logger is not None else trainer.default_root_dir))
        return trainer

    @staticmethod
    def _without_lr_finder(callbacks: Any) -> Any:
        """A resumed run keeps the learning rate its LR finder chose when the run started (the checkpoint
        brings it): running the finder again would change the run midway."""
        if not isinstance(callbacks, list) or not any(isinstance(c, LearningRateFinder) for c in callbacks):
            return callbacks
        rank_zero_info("LearningRateFinder: not run again on resume; the run keeps the learning rate it found")
        return [c for c in callbacks if not isinstance(c, LearningRateFinder)]

    def after_fit(self) -> None:
        best = self._get(self.config_init, "checkpoint")
        log_dir = self.trainer.log_dir  # a collective call under DDP: every rank must make it
        if not self.trainer.is_global_zero or best is None or not best.best_model_path:
            return
        score = best.best_model_score
        shown = f"{score.item():.4f}" if score is not None else "n/a"
        print(f"Best checkpoint: {best.best_model_path} ({best.monitor} {shown}); logs in {log_dir}")


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


def named_subcommand(args: ArgsType) -> str | None:
    """The first positional argument of a command line (the subcommand, if the line is valid), else ``None``.

    >>> named_subcommand(["--config", "fit.yaml", "test", "--ckpt_path", "best"])
    'test'
    >>> named_subcommand(["--help"]) is None
    True
    """
    if not isinstance(args, list | tuple):
        return None
    after_config = False
    for arg in map(str, args):
        if after_config:
            after_config = False
        elif arg in ("-c", "--config"):
            after_config = True
        elif not arg.startswith("-"):
            return arg
    return None


def launched_as_rank_zero() -> bool:
    """Whether this process is global rank 0, known before any Trainer exists from what the launchers set:
    torchrun's ``RANK``, SLURM's ``SLURM_PROCID``, ``LOCAL_RANK`` and ``NODE_RANK`` of Lightning's own launcher."""
    return rank_zero_only.rank == 0 and int(os.environ.get("NODE_RANK") or 0) == 0


def cpu_threads(config: Namespace) -> int:
    """``--torch_threads``, with ``auto`` resolved by the model class's ``cpu_threads``."""
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
        code = 2 if isinstance(own, ConfigError) else getattr(own, "exit_code", 1)
    except SIGTERMException:  # Lightning's own stop on SIGTERM (outside the training batches LastCheckpoint sees)
        sys.stderr.write("error: stopped by SIGTERM\n")
        code = 128 + 15
    except SystemExit as exit_:  # --help, --print_config, argument errors
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        release_runs()
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
        own = (ConfigError, DataError, CheckpointError, TrainingDivergedError, TrainingInterruptedError, WriteError)
        if isinstance(err, own):
            return err
        if isinstance(err, MisconfigurationException):  # Lightning's word for a bad Trainer setting
            return ConfigError(str(err).strip().splitlines()[0])
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
