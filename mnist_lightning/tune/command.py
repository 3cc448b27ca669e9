"""The ``python -m mnist_lightning.tune`` command: its options, the order of its checks (everything is checked
before anything is written), the worker processes of ``--n_workers``, and its one-line errors."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna

from mnist_lightning.cli import LIBRARY_NOISE, exit_code, own_error
from mnist_lightning.tune.report import report
from mnist_lightning.tune.runner import COUNTED, Tuner
from mnist_lightning.tune.space import load_search
from mnist_lightning.tune.storage import scrub

PROGRAM = "python -m mnist_lightning.tune"


class WorkersFailedError(RuntimeError):
    """A worker of ``--n_workers`` was killed or stopped on an error; the search reported what it had."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
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


def supervise(argv: list[str], tuner: Tuner, study: optuna.Study, n_workers: int) -> list[tuple[int, int]]:
    """Start the workers and wait for them; the trials of one that dies are marked failed at once, so that the
    others take their places. Returns (worker, exit code) of the workers that did not end well."""
    command = [sys.executable, "-m", "mnist_lightning.tune", *argv, "--worker"]
    running = {index: subprocess.Popen(command) for index in range(n_workers)}
    failed = []
    while running:
        for index, worker in list(running.items()):
            if worker.poll() is None:
                continue
            del running[index]
            if worker.returncode:
                failed.append((index, worker.returncode))
                with tuner.storage.counting_lock():
                    tuner.reap(study)
        time.sleep(0.2)
    return failed


def workers_error(failed: list[tuple[int, int]], n_workers: int, full: bool) -> WorkersFailedError:
    said = [f"worker {index} killed by signal {-code}" if code < 0 else f"worker {index} exit code {code}"
            for index, code in failed]  # fmt: skip
    codes = [code for _, code in failed if code > 0]
    then = "the others took their places" if full else "run the same command again to fill the study"
    return WorkersFailedError(
        f"{len(failed)} of {n_workers} workers ended early ({', '.join(said)}): a trial they were running was "
        f"marked failed, the report above covers the rest; {then}",
        max(codes) if codes else 1,
    )


def tune(argv: list[str], options: argparse.Namespace, passthrough: list[str]) -> None:
    overrides = {k: getattr(options, k) for k in ("n_trials", "timeout", "study_name", "seed")}
    search = load_search(options.config, overrides)
    tuner = Tuner(search, options.root, options.storage, passthrough)
    try:
        if options.worker:
            tuner.optimize(tuner.open())
            return
        tuner.check_space()
        study = tuner.open()
        print(
            f"study {search.study_name!r} in {tuner.storage.shown}: {len(study.trials)} trials so far, "
            f"{search.n_trials} in all",
            flush=True,
        )
        failed: list[tuple[int, int]] = []
        if options.n_workers == 1:
            tuner.optimize(study)
        else:
            failed = supervise(argv, tuner, study, options.n_workers)
        report(study, tuner.folder, search.metric)
        if failed:
            counted = len(study.get_trials(deepcopy=False, states=COUNTED))
            raise workers_error(failed, options.n_workers, counted >= search.n_trials)
    finally:
        tuner.storage.close()


def main(argv: list[str] | None = None) -> None:
    """Run a search; this project's errors print one line, ``error: ...`` (a storage password masked)."""
    for message in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", message=message)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available", "Seed set": once per trial is noise
        logging.getLogger(name).setLevel(logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    options, passthrough = parse(argv)
    try:
        tune(argv, options, passthrough)
    except Exception as err:
        own = err if isinstance(err, WorkersFailedError) else own_error(err)
        if own is None:
            raise
        said = str(own) if options.storage is None else scrub(str(own), options.storage)
        sys.stderr.write(f"error: {said}\n")
        sys.exit(exit_code(own))
