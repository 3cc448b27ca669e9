"""Searches sharing a PostgreSQL study across machines (separate ``--root`` folders): the study is created once
however many processes start at the same moment, together they run the trials asked (at most the processes less one
more), a dead process's trial is failed by Optuna's heartbeat on any machine, and the URL's password is never
printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest
from optuna.trial import TrialState
from psycopg import sql
from tune_helpers import tune

from mnist_lightning.tune import Tuner, load_search, storage

REPO = Path(__file__).resolve().parents[2]
SEARCH = REPO / "configs" / "search"
TINY = ["--data.val_size", "200", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[Path]:
    """A throwaway PostgreSQL server (Debian's binaries): initdb in a temporary folder, a unix socket only; returns
    the socket's folder. Started once for the module: each test gets a fresh database of its own on it."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        if os.environ.get("CI"):
            pytest.fail("CI installs postgresql (.ci/run): its binaries are missing")
        pytest.skip("Debian's postgresql is not installed (apt-get install postgresql)")
    bin_dir = bins[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="tune-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = folder / "data", folder / "log"
    subprocess.run(
        [*as_user, bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust"], check=True, capture_output=True
    )
    options = f"-c listen_addresses='' -k {folder}"
    subprocess.run(
        [*as_user, bin_dir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run([*as_user, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a new, empty database on the module's server: no test sees another's studies."""
    name = re.sub(r"\W", "_", request.node.name).lower()[:60]
    with psycopg.connect(f"host={postgres_server} user=postgres dbname=postgres", autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"postgresql://postgres@/{name}?host={postgres_server}"


def with_password(url: str) -> str:
    """The fixture's server trusts local connections: a password is accepted and ignored, as a shown URL must."""
    return url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")


def test_processes_started_at_once_on_three_roots_share_one_study(
    postgres_url: str, synthetic_dir: Path, tmp_path: Path
) -> None:
    """Three searches on a fresh database, as three machines would start them: none dies on creating the schema,
    and together they run n_trials, at most two more."""
    url = with_password(postgres_url)
    command = [sys.executable, "-m", "mnist_lightning.commands.tune", "--config", str(SEARCH / "logreg.yaml")]
    command += ["--storage", url, "--n_trials", "3", "--data.data_dir", str(synthetic_dir), *TINY]
    processes = [
        subprocess.Popen([*command, "--root", str(tmp_path / f"machine{n}")], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for n in range(3)
    ]  # fmt: skip
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert "s3cret" not in out + err
        assert "postgresql://postgres:***@" in out
    trials = optuna.load_study(study_name="logreg", storage=postgres_url).trials
    assert 3 <= len(trials) <= 3 + 3 - 1
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state in COUNTED for t in trials)


def test_schema_is_created_once_by_processes_opening_at_once(postgres_url: str, tmp_path: Path) -> None:
    search = load_search(SEARCH / "logreg.yaml", {})
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_study(index: int) -> None:
        tuner = Tuner(search, tmp_path / f"machine{index}", postgres_url, [])
        start.wait()
        try:
            tuner.open()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=open_study, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [s.study_name for s in optuna.get_all_study_summaries(postgres_url)] == ["logreg"]


def test_a_dead_process_trial_is_failed_by_the_heartbeat(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Liveness is the database's: a trial whose heartbeat stopped (its process died, on whatever machine: its host
    and process id say nothing to another machine) is failed by the next process that starts a trial."""
    monkeypatch.setattr(storage, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(storage, "GRACE_PERIOD", 1)
    monkeypatch.setattr(Tuner, "run_trial", lambda self, trial: 0.5)
    search = load_search(SEARCH / "logreg.yaml", {"n_trials": 1})
    doomed, other = Tuner(search, tmp_path / "a", postgres_url, []), Tuner(search, tmp_path / "b", postgres_url, [])
    study = doomed.open()
    killed = study.ask()
    study._storage.record_heartbeat(killed._trial_id)  # its last heartbeat
    time.sleep(2.5)
    other.optimize(other.open())
    assert f"trial {killed.number} stopped mid-run" in capsys.readouterr().out
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_study_in_postgresql(
    postgres_url: str, synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this process (the test above starts real ones): the second command continues the study."""
    monkeypatch.chdir(REPO)
    root = tmp_path / "runs"
    args = ["--config", str(SEARCH / "logreg.yaml"), "--root", str(root), "--storage", postgres_url]
    args += ["--data.data_dir", str(synthetic_dir), *TINY]
    for n_trials in ("2", "3"):
        assert tune(*args, "--n_trials", n_trials) == 0
    trials = optuna.load_study(study_name="logreg", storage=postgres_url).trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert not (root / "search" / "logreg" / "study.db").exists()
    assert (root / "search" / "logreg" / "best.yaml").is_file()
