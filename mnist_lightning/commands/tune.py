"""``mnist-tune --config configs/search/logreg.yaml``: an Optuna search over train.py options (the package
:mod:`mnist_lightning.tune`). Its options, the order of its checks (everything is checked before anything is
written) and the worker processes of ``--n_workers``."""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import TrialState

from mnist_lightning.commands.options import Parser, seconds, whole
from mnist_lightning.commands.runner import entry
from mnist_lightning.errors import TrainingInterruptedError
from mnist_lightning.tune.report import report
from mnist_lightning.tune.runner import COUNTED, Tuner
from mnist_lightning.tune.space import SEARCH_KEYS, load_search


class WorkersFailedError(TrainingInterruptedError):
    """A worker of ``--n_workers`` was killed or stopped on an error; the search reported what it had."""


SEARCH_HELP = f"""Optuna search over train.py options; other options (e.g. --data.data_dir) go to every trial.

The search file (YAML) needs `space:`, a mapping of train.py options (without --) to ranges:
{{low: L, high: H[, log: true | step: S]}} or {{choices: [...]}}. It may also set:
{", ".join(sorted(SEARCH_KEYS - {"space"}))}.
The paths in its `config:` (train.py config files every trial starts from) are relative to the folder
mnist-tune runs in. Examples: configs/search/*.yaml in the project's repository."""


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = Parser("mnist-tune", SEARCH_HELP)
    parser.add_argument("--config", type=Path, required=True, help="the search file (see above)")
    parser.add_argument("--n_trials", type=whole(1), help="finished trials in the study in all (the search file's)")
    parser.add_argument("--timeout", type=seconds(), help="seconds after which no new trial starts")
    parser.add_argument("--n_workers", type=whole(1), default=1, help="processes on this machine sharing the study")
    parser.add_argument("--storage", help="a database URL (e.g. postgresql://...); default: SQLite in the study folder")
    parser.add_argument("--study_name", help="the study's name (the search file's, or its file name)")
    parser.add_argument("--root", type=Path, default=Path("."), help="runs root: studies go to ROOT/search/NAME")
    parser.add_argument("--seed", type=int, help="the sampler's seed")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    options, passthrough = parser.parse_known_args(argv)
    for token in passthrough:
        if token.startswith("-") and not token.startswith("--"):
            parser.error(f"unrecognized argument {token}")
    return options, passthrough


def supervise(argv: list[str], study: optuna.Study, n_workers: int) -> list[tuple[str, int]]:
    """Run the workers to their end; the running trial of one that died is marked failed (the others have taken
    its place: a trial counts once finished). Returns what happened to each worker that did not end well, and its
    exit code."""
    command = [sys.executable, "-m", "mnist_lightning.commands.tune", *argv, "--worker"]
    workers = [subprocess.Popen(command) for _ in range(n_workers)]
    ended = []
    for index, worker in enumerate(workers):
        if not worker.wait():
            continue
        failed = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("pid") == worker.pid and trial.user_attrs.get("host") == socket.gethostname():
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                failed.append(trial.number)
        code = worker.returncode
        said = f"worker {index} killed by signal {-code}" if code < 0 else f"worker {index} exit code {code}"
        ended.append((f"{said}, " + (f"its trial {failed[0]} marked failed" if failed else "no trial running"), code))
    return ended


def main(argv: Sequence[str]) -> int:
    """Run a search (or, with ``--worker``, one of its worker processes)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial's traceback: the search says it in one line
    for name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available", "Seed set": once per trial is noise
        logging.getLogger(name).setLevel(logging.WARNING)
    options, passthrough = parse(list(argv))
    overrides = {k: getattr(options, k) for k in ("n_trials", "timeout", "study_name", "seed")}
    search = load_search(options.config, overrides)
    tuner = Tuner(search, options.root, options.storage, passthrough)
    if options.worker:
        tuner.optimize(tuner.open())
        return 0
    tuner.check_space()
    study = tuner.open()
    print(
        f"study {search.study_name!r} in {tuner.storage.shown}: {len(study.trials)} trials so far, "
        f"{search.n_trials} in all",
        flush=True,
    )
    ended = []
    if options.n_workers == 1:
        tuner.optimize(study)
    else:
        ended = supervise(list(argv), study, options.n_workers)
    report(study, tuner.folder, search.metric)
    if ended:
        full = len(study.get_trials(deepcopy=False, states=COUNTED)) >= search.n_trials
        then = "the others took their places" if full else "run the same command again to fill the study"
        raise WorkersFailedError(
            f"{len(ended)} of {options.n_workers} workers ended early ({'; '.join(said for said, _ in ended)}): the "
            f"report above covers the rest; {then}",
            max((code for _, code in ended if code > 0), default=1),
        )
    return 0


cli = entry(main)

if __name__ == "__main__":  # the workers of --n_workers
    cli()
