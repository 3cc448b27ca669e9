"""``--n_workers``: processes share one study, never fewer trials than asked and at most the workers less one more;
a worker killed mid-trial does not take the search down with it. Its trial is marked failed (the others take its
place) and the search still reports, then says in one line what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import TrialState
from tune_helpers import SEARCH, small

REPO = Path(__file__).resolve().parents[2]


def running_trial(database: Path, process: subprocess.Popen) -> optuna.trial.FrozenTrial:
    """The first trial a worker has started (polled: the workers start in their own time). The poll never creates
    the database or its tables (``skip_table_creation``): racing the search's own schema creation would make the
    search fail on an error of the test's making."""
    deadline = time.monotonic() + 300  # a bound, not a measurement: the search itself takes seconds
    while time.monotonic() < deadline and process.poll() is None:
        study = None
        if database.is_file():
            try:
                storage = optuna.storages.RDBStorage(f"sqlite:///{database}", skip_table_creation=True)
                study = optuna.load_study(study_name="logreg", storage=storage)
            # not created yet: optuna wraps a missing table met inside its session in StorageInternalError
            except (KeyError, sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError):
                study = None
        running = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "pid" in t.user_attrs] if study else []
        if running:
            return running[0]
        time.sleep(0.2)
    stderr = process.stderr.read() if process.poll() is not None and process.stderr else ""
    raise AssertionError(f"no worker started a trial (exit code {process.poll()}): {stderr[-2000:]}")


def test_a_killed_worker_s_trial_is_failed_and_the_search_still_reports(synthetic_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    storage = f"sqlite:///{root / 'search' / 'logreg' / 'study.db'}"
    command = [sys.executable, "-m", "mnist_lightning.commands.tune", "--config", str(SEARCH / "logreg.yaml")]
    command += ["--root", str(root), "--n_trials", "4", "--n_workers", "2", "--data.data_dir", str(synthetic_dir)]
    command += ["--data.val_size", "200", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]
    command += ["--trainer.log_every_n_steps", "1"]
    search = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = running_trial(root / "search" / "logreg" / "study.db", search)
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    out, err = search.communicate(timeout=600)
    assert search.returncode == 1, err
    assert err.count("\n") == 1, err
    assert err.startswith("error: 1 of 2 workers ended early (worker "), err
    assert f"killed by signal 9, its trial {victim.number} marked failed)" in err
    assert "best trial" in out  # the report
    trials = {t.number: t for t in optuna.load_study(study_name="logreg", storage=storage).trials}
    assert trials[victim.number].state == TrialState.FAIL
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials.values()) == 4  # place retaken


def test_two_workers_share_one_study(synthetic_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    command = [sys.executable, "-m", "mnist_lightning.commands.tune", "--config", str(SEARCH / "logreg.yaml")]
    command += ["--root", str(root), "--n_trials", "6", "--n_workers", "2", *small(synthetic_dir, epochs=2)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="logreg", storage=f"sqlite:///{root / 'search/logreg/study.db'}").trials
    assert 6 <= len(trials) <= 6 + 2 - 1  # never fewer than asked, at most the workers less one more
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both workers ran trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)  # no parameters drawn twice
    runs = sorted(p.name for p in (root / "search" / "logreg" / "lightning_logs").iterdir())
    assert runs == [f"trial_{n:04d}" for n in range(len(trials))]
