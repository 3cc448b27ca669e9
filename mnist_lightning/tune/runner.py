"""The trials of a search: every trial is an ordinary ``train.py fit`` run (its own ``lightning_logs/trial_NNNN``
folder, checkpoints, TensorBoard logs), started in-process with the parameters drawn here and passed as arguments,
so nothing inside a run draws parameters. Optuna's Lightning callback prunes trials that fall behind the median.

A process runs Optuna's loop until the study holds ``n_trials`` finished trials (diverged ones are replaced), its
timeout passes, or a mistake that every trial would repeat (a metric no run logs, a missing data folder,
``max_failures`` diverged trials in a row) stops it in one line.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState
from optuna_integration import PyTorchLightningPruningCallback

from mnist_lightning.cli import MNISTCLI, own_error
from mnist_lightning.errors import ConfigError, TrainingDivergedError
from mnist_lightning.tune.report import progress
from mnist_lightning.tune.space import Search, corners, option_args, suggest
from mnist_lightning.tune.storage import Storage

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
"""Trials that count towards ``n_trials`` (Optuna's ``MaxTrialsCallback``): a failed one (an error, a killed process)
is replaced. A process stops once this many have finished, so a study never holds fewer; the other processes finish
the trial they run, so it holds at most ``n_trials`` plus the processes less one."""
SEED_STRIDE = 1000
"""The sampler is seeded afresh for every trial: the search's seed plus this times the trial's number."""
OWN_OPTIONS = ("trainer.default_root_dir", "trainer.logger.init_args.version")
"""Options every trial sets itself (where its run goes): given to the search they would be silently overridden."""


class TrialCLI(MNISTCLI):
    """train.py with two more callbacks, given as objects (LightningCLI takes callbacks only from config)."""

    def __init__(self, args: list[str], callbacks: list[Callback]) -> None:
        self._extra_callbacks = callbacks
        super().__init__(args=args)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks[:0] = self._extra_callbacks
        return trainer


class BestScore(Callback):
    """The best value of the metric over the run's validations: the trial's value (what the best checkpoint holds).
    The first validation (the sanity check's included) stops the search when the metric is not logged at all."""

    def __init__(self, metric: str, maximize: bool) -> None:
        self.metric, self.maximize, self.best = metric, maximize, None

    def on_validation_end(self, trainer: Trainer, pl_module: Any) -> None:
        metrics = trainer.callback_metrics
        if self.metric not in metrics:
            logged = ", ".join(sorted(metrics)) or "nothing"
            raise ConfigError(
                f"metric {self.metric!r}: the runs do not log it (a validation logged: {logged}); "
                "fix `metric:` in the search file"
            )
        value = metrics[self.metric]
        if trainer.sanity_checking or not math.isfinite(score := float(value)):
            return
        if self.best is None or (score > self.best if self.maximize else score < self.best):
            self.best = score


@contextlib.contextmanager
def argv_alone() -> Iterator[None]:
    """LightningCLI warns when ``sys.argv`` holds arguments besides the ones it is given, and names the program
    after ``sys.argv[0]`` in its errors: it sees ``train.py``, whose options the trials take."""
    saved = sys.argv
    sys.argv = ["train.py"]
    try:
        yield
    finally:
        sys.argv = saved


def refuse_multiprocess(trainer: dict[str, Any]) -> None:
    """A trial trains in this process: Lightning's DDP launcher would start the whole search again in every
    rank, each drawing its own parameters. Refused until trials are launched as processes of their own."""
    devices, nodes, strategy = trainer.get("devices"), trainer.get("num_nodes") or 1, str(trainer.get("strategy"))
    several = (isinstance(devices, int) and devices > 1) or (isinstance(devices, list) and len(devices) > 1)
    if several or nodes > 1 or "ddp" in strategy.lower():
        raise ConfigError(
            f"a trial with --trainer.devices {devices}, --trainer.num_nodes {nodes}, --trainer.strategy {strategy}: "
            "trials run one process each (DDP would draw other parameters in every rank); search with one device "
            "and train the best config with DDP afterwards"
        )


def refuse_own_options(config: dict[str, Any], folder: Path) -> None:
    """Where a trial's run goes is the search's choice (``--root``): a value given for it would be ignored."""
    for option in OWN_OPTIONS:
        value: Any = config
        for key in option.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            raise ConfigError(
                f"--{option} {value}: every trial runs in {folder}/lightning_logs/trial_NNNN; "
                "choose the folder with --root (studies go to ROOT/search/STUDY) and drop this option"
            )


def quiet_cli(args: list[str], out: io.StringIO | None = None) -> tuple[int, str]:
    """Run train.py in-process, its output captured (stdout into ``out``): (exit code, what it wrote to stderr)."""
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out or io.StringIO()), contextlib.redirect_stderr(err), argv_alone():
        try:
            MNISTCLI(args=args)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except Exception as ex:
            own = own_error(ex)
            if own is None:
                raise
            err.write(f"error: {own}\n")
            code = 2
    return code, err.getvalue()


class Tuner:
    """One process of a search: opens (or creates) the study, then runs trials until the budget is spent."""

    def __init__(self, search: Search, root: Path, storage_url: str | None, passthrough: list[str]) -> None:
        self.search, self.passthrough = search, passthrough
        self.folder = root / "search" / search.study_name
        self.storage = Storage(storage_url, self.folder, search.study_name)
        self.failures = 0
        """This process's trials that failed in a row."""

    def open(self) -> optuna.Study:
        """The study, created on first use; a study made for another space, metric or direction is refused."""
        return self.storage.open(self.search.direction, self.search.make_pruner(), self.search.fingerprint())

    def base_args(self) -> list[str]:
        args = [token for path in self.search.config for token in ("--config", path)]
        return [*args, *option_args(self.search.fixed), *self.passthrough]

    def check_space(self) -> None:
        """train.py parses the lowest and the highest values of the space before any trial runs."""
        for options in corners(self.search.space):
            printed = io.StringIO()
            code, said = quiet_cli(["fit", *self.base_args(), *option_args(options), "--print_config"], printed)
            if code:
                raise ConfigError(f"search space: {said.strip().splitlines()[-1].removeprefix('error: ')}")
            config = yaml.safe_load(printed.getvalue())
            refuse_multiprocess(config.get("trainer") or {})
            refuse_own_options(config, self.folder)

    def objective(self, trial: optuna.Trial) -> float:
        """Optuna's objective: one trial, its process recorded (``--n_workers``'s parent fails the trial of a worker
        that dies), the reason of a failure kept as the trial's ``error``."""
        self.reseed(trial.study, trial.number)  # before any value is drawn
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        try:
            return self.run_trial(trial)
        except SystemExit:  # train.py's parser refused a value drawn between the corners (it said which above)
            raise ConfigError(f"trial {trial.number}: train.py refused the values drawn, {trial.params}") from None
        except Exception as err:
            own = own_error(err)
            if own is None:
                raise
            trial.set_user_attr("error", str(own))
            if own is err:
                raise
            raise own from err

    def run_trial(self, trial: optuna.Trial) -> float:
        """One ordinary train.py run with the drawn parameters; raises TrialPruned when the pruner says so."""
        params = {name: suggest(trial, name, spec) for name, spec in self.search.space.items()}
        version = f"trial_{trial.number:04d}"
        trial.set_user_attr("run", str(self.folder / "lightning_logs" / version))
        args = ["fit", *self.base_args(), *option_args(params)]
        args += ["--trainer.default_root_dir", str(self.folder), "--trainer.logger.init_args.version", version]
        args += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
        best = BestScore(self.search.metric, self.search.direction == "maximize")
        pruning = PyTorchLightningPruningCallback(trial, monitor=self.search.metric)
        with contextlib.redirect_stdout(io.StringIO()), argv_alone():
            TrialCLI(args, [pruning, best])
        if best.best is None:
            raise TrainingDivergedError(f"trial {trial.number}: {self.search.metric} was never finite")
        return best.best

    def optimize(self, study: optuna.Study) -> None:
        """Optuna's loop until the study holds ``n_trials`` finished trials or the timeout passes. A failure that is
        the trial's own (its drawn values diverged) is replaced, up to ``max_failures`` in a row; any other error
        (a setting, the data, the metric: every trial would repeat it) stops the process."""
        if len(study.get_trials(deepcopy=False, states=COUNTED)) >= self.search.n_trials:
            return
        study.optimize(
            self.objective,
            timeout=self.search.timeout,
            catch=(TrainingDivergedError,),
            callbacks=[MaxTrialsCallback(self.search.n_trials, states=COUNTED), self.after_trial],
        )

    def reseed(self, study: optuna.Study, number: int) -> None:
        """Trial ``number``'s sampler, seeded from the search's seed and the trial's number, which the storage hands
        out once: the same trials for the same seed in any process, and never one seed for two workers' trials
        (seeding from the study's size did that when two workers started a trial at once)."""
        study.sampler = optuna.samplers.TPESampler(seed=(self.search.seed + SEED_STRIDE * number) % 2**32)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """After each trial of this process: its line, and the stop after ``max_failures`` failures in a row."""
        print(progress(study, trial.number, self.search.metric), flush=True)
        self.failures = self.failures + 1 if trial.state == TrialState.FAIL else 0
        if self.failures >= self.search.max_failures:
            raise ConfigError(
                f"{self.failures} trials in a row failed, the last with: {trial.user_attrs.get('error')}; the search "
                "stops (fix the cause, or raise max_failures in the search file)"
            )
