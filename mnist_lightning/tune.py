"""``python -m mnist_lightning.tune --config configs/search/logreg.yaml``: an Optuna search over train.py options.

Every trial is an ordinary ``train.py fit`` run (its own ``lightning_logs/trial_NNNN`` folder, checkpoints,
TensorBoard logs), started in-process with the parameters drawn here and passed as arguments, so nothing inside
a run draws parameters. Optuna's Lightning callback prunes trials that fall behind the median. The study lives in
``<root>/search/<study>/study.db`` (SQLite) unless ``--storage`` names another database; running the same command
again continues it. Options this module does not know are passed to every trial (e.g. ``--data.data_dir``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback
from optuna.trial import TrialState

from mnist_lightning.cli import FOLLOW_ROOT, LIBRARY_NOISE, MNISTCLI, _own_error
from mnist_lightning.errors import ConfigError, TrainingDivergedError, one_line
from mnist_lightning.fileio import process_alive

SEARCH_KEYS = {"study_name", "metric", "direction", "n_trials", "timeout", "seed", "pruner", "config", "fixed", "space"}
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
"""Trials that count towards ``n_trials``: a failed one (an error, a killed process) is replaced."""


@dataclass
class Search:
    """A search file (``configs/search/*.yaml``) after the command line's overrides."""

    study_name: str
    space: dict[str, dict[str, Any]]
    metric: str = "val/acc"
    direction: str = "maximize"
    n_trials: int = 20
    timeout: float | None = None
    seed: int = 42
    pruner: dict[str, int] = field(default_factory=dict)
    config: list[str] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """What a study is tied to: continuing it with another space or metric would mix incomparable trials."""
        return json.dumps({"space": self.space, "metric": self.metric, "direction": self.direction}, sort_keys=True)


def load_search(path: Path, overrides: dict[str, Any]) -> Search:
    """Read and check a search file; every mistake is one line naming the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--config {path}: not valid YAML ({one_line(str(err))})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("space"), dict) or not raw["space"]:
        raise ConfigError(f"--config {path}: expected a mapping with a non-empty `space:` of options to search")
    unknown = sorted(set(raw) - SEARCH_KEYS)
    if unknown:
        raise ConfigError(f"--config {path}: unknown key {unknown[0]!r}; accepted: {', '.join(sorted(SEARCH_KEYS))}")
    raw.setdefault("study_name", path.stem)
    raw.update({key: value for key, value in overrides.items() if value is not None})
    if isinstance(raw.get("config"), str):
        raw["config"] = [raw["config"]]
    search = Search(**raw)
    if search.direction not in ("maximize", "minimize"):
        raise ConfigError(f"--config {path}: direction must be maximize or minimize, got {search.direction!r}")
    if search.n_trials < 1:
        raise ConfigError(f"--n_trials must be >= 1, got {search.n_trials}")
    for name, spec in search.space.items():
        check_range(name, spec)
    return search


def check_range(name: str, spec: Any) -> None:
    """A range must hold at least one value (and a log range only positive ones)."""
    where = f"search space, {name}"
    if not isinstance(spec, dict) or not ({"choices"} <= set(spec) or {"low", "high"} <= set(spec)):
        raise ConfigError(f"{where}: expected {{choices: [...]}} or {{low: L, high: H[, log: true][, step: S]}}")
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ConfigError(f"{where}: empty range (choices must list at least one value)")
        return
    low, high = spec["low"], spec["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ConfigError(f"{where}: low and high must be numbers, got {low!r} and {high!r}")
    if low > high:
        raise ConfigError(f"{where}: empty range (low {low} > high {high})")
    if spec.get("log") and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")


def suggest(trial: optuna.Trial, name: str, spec: dict[str, Any]) -> Any:
    """Draw one value; choices that are not plain scalars (lists, mappings) are drawn by their JSON text."""
    if "choices" in spec:
        choices = spec["choices"]
        if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            return trial.suggest_categorical(name, choices)
        return json.loads(trial.suggest_categorical(name, [json.dumps(c) for c in choices]))
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log")), spec.get("step")
    if isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int)):
        return trial.suggest_int(name, low, high, log=log, step=step or 1)
    return trial.suggest_float(name, float(low), float(high), log=log, step=step)


def cli_value(value: Any) -> str:
    """How train.py reads a value on its command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def option_args(options: dict[str, Any]) -> list[str]:
    return [token for name, value in options.items() for token in (f"--{name}", cli_value(value))]


def corners(space: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The lowest and the highest value of every parameter: what train.py must accept before any trial runs."""
    for end in (0, -1):
        yield {
            name: spec["choices"][end] if "choices" in spec else (spec["low"], spec["high"])[end]
            for name, spec in space.items()
        }


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
    """The best value of the metric over the run's validations: the trial's value (what the best checkpoint holds)."""

    def __init__(self, metric: str, maximize: bool) -> None:
        self.metric, self.maximize, self.best = metric, maximize, None

    def on_validation_end(self, trainer: Trainer, pl_module: Any) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if trainer.sanity_checking or value is None or not math.isfinite(score := float(value)):
            return
        if self.best is None or (score > self.best if self.maximize else score < self.best):
            self.best = score


class Tuner:
    """One process of a search: opens (or creates) the study, then runs trials until the budget is spent."""

    def __init__(self, search: Search, root: Path, storage_url: str | None, passthrough: list[str]) -> None:
        self.search, self.passthrough = search, passthrough
        self.folder = root / "search" / search.study_name
        self.sqlite = storage_url is None
        if self.sqlite:
            storage_url = f"sqlite:///{(self.folder / 'study.db').resolve()}"
        self.storage_url = storage_url

    def open(self) -> optuna.Study:
        """The study, created on first use; a study made for another space, metric or direction is refused."""
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if self.sqlite else {"pool_pre_ping": True}
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            storage = optuna.storages.RDBStorage(self.storage_url, engine_kwargs=kwargs)
            study = optuna.create_study(
                storage=storage,
                study_name=self.search.study_name,
                direction=self.search.direction,
                load_if_exists=True,
                pruner=optuna.pruners.MedianPruner(
                    **{"n_startup_trials": 4, "n_warmup_steps": 2, **self.search.pruner}
                ),
            )
        except ImportError as err:
            raise ConfigError(f"--storage {self.storage_url}: its driver is not installed ({err})") from None
        except Exception as err:  # sqlalchemy's errors: no server, wrong password, no such database
            raise ConfigError(f"--storage {self.storage_url}: cannot open it ({one_line(str(err))})") from None
        fingerprint = study.user_attrs.get("search")
        if fingerprint is None:
            study.set_user_attr("search", self.search.fingerprint())
        elif fingerprint != self.search.fingerprint():
            raise ConfigError(
                f"study {self.search.study_name!r} in {self.storage_url} was created with another search space, "
                "metric or direction: pass --study_name NEW (or remove the study) to start a new one"
            )
        return study

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
            refuse_multiprocess(yaml.safe_load(printed.getvalue()).get("trainer") or {})

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Counting and starting a trial is one step for the processes of this machine (SQLite studies)."""
        if not self.sqlite:
            yield
            return
        with (self.folder / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def next_trial(self, study: optuna.Study) -> optuna.Trial | None:
        """A new trial, or None when the study has its ``n_trials``; trials of dead processes become failed."""
        with self.lock():
            host = socket.gethostname()
            for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                attrs = frozen.user_attrs
                if attrs.get("host") == host and not process_alive(int(attrs.get("pid", 0))):
                    study._storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
                    print(f"trial {frozen.number} was killed mid-run (process {attrs.get('pid')}): marked failed")
            if len(study.get_trials(deepcopy=False, states=COUNTED)) >= self.search.n_trials:
                return None
            trial = study.ask()
            trial.set_user_attr("host", host)
            trial.set_user_attr("pid", os.getpid())
            return trial

    def run_trial(self, trial: optuna.Trial) -> float:
        """One ordinary train.py run with the drawn parameters; raises TrialPruned when the pruner says so."""
        from optuna_integration import PyTorchLightningPruningCallback

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
            raise ConfigError(f"trial {trial.number}: the runs never logged {self.search.metric}")
        return best.best

    def optimize(self, study: optuna.Study) -> None:
        deadline = time.monotonic() + self.search.timeout if self.search.timeout else math.inf
        while time.monotonic() < deadline:
            seed = self.search.seed + 1000 * len(study.trials) + os.getpid() % 1000
            study.sampler = optuna.samplers.TPESampler(seed=seed)  # never the same draws as an earlier process
            trial = self.next_trial(study)
            if trial is None:
                return
            try:
                value = self.run_trial(trial)
            except optuna.TrialPruned:
                study.tell(trial, state=TrialState.PRUNED)
            except KeyboardInterrupt:
                study.tell(trial, state=TrialState.FAIL)
                raise
            except Exception as err:
                own = _own_error(err)
                if own is None or not isinstance(own, (TrainingDivergedError, ConfigError)):
                    study.tell(trial, state=TrialState.FAIL)
                    raise
                trial.set_user_attr("error", str(own))
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, value)
            print(progress(study, trial.number, self.search.metric), flush=True)


@contextlib.contextmanager
def argv_alone() -> Iterator[None]:
    """LightningCLI warns when ``sys.argv`` holds arguments besides the ones it is given: hide this module's."""
    saved = sys.argv
    sys.argv = saved[:1]
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
            own = _own_error(ex)
            if own is None:
                raise
            err.write(f"error: {own}\n")
            code = 2
    return code, err.getvalue()


def progress(study: optuna.Study, number: int, metric: str) -> str:
    """One line per finished trial: its fate, the study's counts and the best so far."""
    trials = study.get_trials(deepcopy=False)
    count = {state: sum(t.state == state for t in trials) for state in TrialState}
    this = trials[number] if number < len(trials) and trials[number].number == number else study.trials[number]
    shown = f"{metric} {this.value:.4f}" if this.value is not None else this.state.name.lower()
    line = (
        f"trial {number}: {shown} | done {count[TrialState.COMPLETE]}, running {count[TrialState.RUNNING]}, "
        f"pruned {count[TrialState.PRUNED]}, failed {count[TrialState.FAIL]}"
    )
    if count[TrialState.COMPLETE]:
        line += f" | best {metric} {study.best_value:.4f} (trial {study.best_trial.number})"
    return line


def report(study: optuna.Study, folder: Path, metric: str, top: int = 5) -> None:
    """The table of the best trials, the best trial's config as ``best.yaml``, and the plots."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        print("no trial completed: nothing to report")
        return
    ranked = sorted(complete, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")[:top]
    names = list(ranked[0].params)
    rows = [["trial", metric, *names]] + [
        [str(t.number), f"{t.value:.4f}", *(short(t.params[n]) for n in names)] for t in ranked
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    best_yaml = folder / "best.yaml"
    write_best_config(study.best_trial, best_yaml)
    print(f"best trial {study.best_trial.number}: {best_yaml} (python train.py fit --config {best_yaml})")
    plots = write_plots(study, folder / "plots")
    if plots:
        print(f"plots: {', '.join(str(p) for p in plots)}")


def short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_best_config(trial: optuna.trial.FrozenTrial, path: Path) -> None:
    """The trial's full config (as train.py saved it), made to start a new run wherever it is used."""
    run = Path(trial.user_attrs["run"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    trainer = config.get("trainer", {})
    root = trainer.get("default_root_dir")
    trainer["default_root_dir"] = None
    loggers = trainer.get("logger")
    for spec in loggers if isinstance(loggers, list) else [loggers]:
        if isinstance(spec, dict) and isinstance(spec.get("init_args"), dict):
            init = spec["init_args"]
            if "version" in init:
                init["version"] = None
            if init.get("save_dir") == root:
                init["save_dir"] = FOLLOW_ROOT
    config["ckpt_path"] = None
    header = f"# Best trial {trial.number} ({run}): value {trial.value!r}.\n"
    header += f"# Reproduce: python train.py fit --config {path}\n"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(header + yaml.safe_dump(config, sort_keys=False))
    tmp.replace(path)


def write_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's plots as HTML (plotly is optional: without it, one line says so)."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        print("plots skipped: pip install plotly (or the project's `plots` extra) to get them")
        return []
    from optuna import visualization

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    plots = {
        "history": visualization.plot_optimization_history,
        "importances": visualization.plot_param_importances,
        "parallel_coordinates": visualization.plot_parallel_coordinate,
    }
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = plot(study)
        except (ValueError, RuntimeError) as err:  # e.g. importances need two completed trials
            print(f"plot {name} skipped: {one_line(str(err))}")
            continue
        path = folder / f"{name}.html"
        figure.write_html(path, include_plotlyjs="directory")
        written.append(path)
    return written


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lightning.tune",
        description="Optuna search over train.py options; other options (e.g. --data.data_dir) go to every trial.",
        allow_abbrev=False,
    )
    parser.add_argument("--config", type=Path, required=True, help="a search file, e.g. configs/search/logreg.yaml")
    parser.add_argument("--n_trials", type=int, help="trials in the study in all (the search file's by default)")
    parser.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    parser.add_argument("--n_workers", type=int, default=1, help="processes on this machine sharing the study")
    parser.add_argument("--storage", help="a database URL (e.g. postgresql://...); default: SQLite in the study folder")
    parser.add_argument("--study_name", help="the study's name (the search file's, or its file name)")
    parser.add_argument("--root", type=Path, default=Path("."), help="runs root: studies go to ROOT/search/NAME")
    parser.add_argument("--seed", type=int, help="the sampler's seed")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    options, passthrough = parser.parse_known_args(argv)
    for token in passthrough:
        if token.startswith("-") and not token.startswith("--"):
            parser.error(f"unrecognized argument {token}")
    if options.n_workers < 1:
        parser.error(f"--n_workers must be >= 1, got {options.n_workers}")
    return options, passthrough


def tune(argv: list[str]) -> None:
    options, passthrough = parse(argv)
    overrides = {k: getattr(options, k) for k in ("n_trials", "timeout", "study_name", "seed")}
    search = load_search(options.config, overrides)
    tuner = Tuner(search, options.root, options.storage, passthrough)
    if options.worker:
        tuner.optimize(tuner.open())
        return
    tuner.check_space()
    study = tuner.open()
    print(
        f"study {search.study_name!r} in {tuner.storage_url}: {len(study.trials)} trials so far, "
        f"{search.n_trials} in all"
    )
    if options.n_workers == 1:
        tuner.optimize(study)
    else:
        workers = [
            subprocess.Popen([sys.executable, "-m", "mnist_lightning.tune", *argv, "--worker"])
            for _ in range(options.n_workers)
        ]
        codes = [worker.wait() for worker in workers]
        if any(codes):
            raise ConfigError(f"a worker failed (exit codes {codes})")
    report(tuner.open(), tuner.folder, search.metric)


def main(argv: list[str] | None = None) -> None:
    """Run a search; this project's errors print one line, ``error: ...``, and exit 2."""
    for message in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", message=message)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available", "Seed set": once per trial is noise
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        tune(sys.argv[1:] if argv is None else argv)
    except ConfigError as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
