"""What every tier shares: the GPU tests' selection, one CPU thread per xdist worker, the tests' own cache, small
synthetic IDX datasets, an in-process CLI runner, and one trained run that many tests read.

The folders are the tiers: ``unit/`` (pure functions), ``integration/`` (in-process fits, parses, TestClient) and
``system/`` (processes, servers, Chromium, DDP, PostgreSQL, the real MNIST files). Fixtures of one tier are in its
own ``conftest.py``; shared helpers are modules of this folder (``from helpers import ...``)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import FAST, CliRunner, cli_runner, write_dataset

collect_ignore = ["payload.py"]  # --doctest-modules would import it, and importing it is what the tests watch for


def names_gpu(markexpr: str) -> bool:
    """Whether a ``-m`` expression names the ``gpu`` marker, which alone selects the GPU tests."""
    return re.search(r"\bgpu\b", markexpr) is not None


def pytest_sessionstart(session: pytest.Session) -> None:
    """A test file in ``tests/`` itself would run in neither lane (``testpaths`` and ``tests/system`` name the
    tiers): refuse to start instead of leaving it out silently."""
    stray = sorted(path.name for path in Path(__file__).parent.glob("test_*.py"))
    if stray and not hasattr(session.config, "workerinput"):
        raise pytest.UsageError(
            f"tests/{stray[0]} is in no tier folder: move it into tests/unit/, tests/integration/ or tests/system/"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run only when the ``-m`` expression names ``gpu`` (``-m gpu``, ``-m "gpu or not gpu"``);
    otherwise they are deselected, and pytest counts them as such. Not an ``addopts = -m "not gpu"``: a ``-m`` on
    the command line replaces that one, so any other ``-m`` would select them on machines without a GPU."""
    if not names_gpu(config.getoption("markexpr") or ""):
        gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
        if gpu:
            config.hook.pytest_deselected(items=gpu)
            items[:] = [item for item in items if item.get_closest_marker("gpu") is None]


def pytest_configure(config: pytest.Config) -> None:
    """With several xdist workers, each worker and every command it starts uses one CPU thread
    (``OMP_NUM_THREADS``, which ``--torch_threads auto`` honours), unless the caller set it: two workers of two
    threads each on two cores made a CNN fit three times slower than alone."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (pyproject's addopts): xdist's worker per core for a tier or the default lane, but none for a
    command that names test files alone: those take less time than starting the workers."""
    named = config.args_source == pytest.Config.ArgsSource.ARGS
    if named and all(arg.partition("::")[0].endswith(".py") for arg in config.args):
        return 0
    return None


@pytest.fixture(autouse=True)
def library_log_levels() -> Iterator[None]:
    """A command run in-process (``tune``'s ``main`` quiets Lightning's loggers for its whole process) must not
    silence the messages later tests read: each test ends with the levels it started with."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tests' own cache folder (checksum verdicts), inherited by the commands they start."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        cache = tmp_path_factory.mktemp("cache")
        monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir with small synthetic MNIST files (1,200 training and 300 test images)."""
    return write_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """Run ``train.py`` in-process in a fresh working directory (``tmp_path``)."""
    return cli_runner(monkeypatch, tmp_path)


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> Path:
    """One finished two-epoch ``fit`` on synthetic data (lr 0.05); returns its working directory, where
    ``stdout.txt`` holds what it printed. Read only: tests that run more commands use :func:`trained`."""
    root = tmp_path_factory.mktemp("shared_run")
    with pytest.MonkeyPatch.context() as monkeypatch, (root / "stdout.txt").open("w") as out:
        run = cli_runner(monkeypatch, root)
        with contextlib.redirect_stdout(out):
            assert run("fit", "--data.data_dir", str(synthetic_dir), "--model.lr", "0.05", *FAST) == 0
    return root


@pytest.fixture
def trained(shared_run: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`shared_run` in ``tmp_path`` (where ``run_cli`` runs); returns ``tmp_path``."""
    shutil.copytree(shared_run / "lightning_logs", tmp_path / "lightning_logs")
    return tmp_path


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()
