"""Shared fixtures: small synthetic IDX datasets, the real MNIST files, an in-process CLI runner, one trained run
that the CLI, TensorBoard, checkpoint and inference tests share, and for the serve tests a model trained on the
real files and a headless browser."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import FAST, write_dataset

from mnist_lightning.cli import main

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data"
QUIET = ("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false")

CliRunner = Callable[..., int]
collect_ignore = ["payload.py"]  # --doctest-modules would import it, and importing it is what the tests watch for


def names_gpu(markexpr: str) -> bool:
    """Whether a ``-m`` expression names the ``gpu`` marker, which alone selects the GPU tests."""
    return re.search(r"\bgpu\b", markexpr) is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need the real MNIST files are marked ``real_data`` and ``slow``: ``-m "not slow"`` skips them.
    Doctests are examples of pure functions: they belong to the ``unit`` lane.

    Tests marked ``gpu`` run only when the ``-m`` expression names ``gpu`` (``-m gpu``, ``-m "gpu or not gpu"``);
    otherwise they are deselected, and pytest counts them as such. Not an ``addopts = -m "not gpu"``: a ``-m`` on
    the command line replaces that one, so ``-m "not slow"`` would select them on machines without a GPU.

    Then the files with the most slow tests go first: pytest-xdist (``--dist loadscope``) hands each worker whole
    files in this order, so the last file a worker runs while the other waits is a quick one."""
    for item in items:
        if isinstance(item, pytest.DoctestItem):
            item.add_marker(pytest.mark.unit)
        if "real_data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)
            item.add_marker(pytest.mark.slow)
    if not names_gpu(config.getoption("markexpr") or ""):
        gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
        if gpu:
            config.hook.pytest_deselected(items=gpu)
            items[:] = [item for item in items if item.get_closest_marker("gpu") is None]
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: each file keeps its own order


def pytest_configure(config: pytest.Config) -> None:
    """With several xdist workers, each worker and every command it starts uses one CPU thread
    (``OMP_NUM_THREADS``, which ``--torch_threads auto`` honours), unless the caller set it: two workers of two
    threads each on two cores made a CNN fit three times slower than alone."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (pyproject's addopts): xdist's worker per core for the suite and its lanes, but none for the
    unit lane (``-m unit``) or a command that names test files: those take less time than starting the workers."""
    if config.option.markexpr == "unit" or config.args_source == pytest.Config.ArgsSource.ARGS:
        return 0
    return None


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``tests/payload.py`` leaves its mark if anything of it is imported or called."""
    path = tmp_path / "payload-ran"
    monkeypatch.setenv("PAYLOAD_MARKER", str(path))
    return path


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


@pytest.fixture(scope="session")
def real_data_dir() -> Iterator[Path]:
    """The four original MNIST files; CI has them, so their absence is a failure, never a skip. The folder is
    shared and must stay as it was: nothing may be written into it (root could, whatever its permissions)."""
    raw = REAL_DATA / "MNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte").is_file(), f"the real MNIST files are expected in {raw}"
    before = sorted((path.name, path.stat().st_mtime_ns) for path in REAL_DATA.rglob("*"))
    yield REAL_DATA
    assert sorted((path.name, path.stat().st_mtime_ns) for path in REAL_DATA.rglob("*")) == before


def cli_runner(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> CliRunner:
    """``run(subcommand, *args)`` runs ``train.py`` in-process in ``cwd``; returns the exit code."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["train.py"])

    def run(subcommand: str, *args: str) -> int:
        try:
            main([subcommand, *QUIET, *args])
        except SystemExit as exit_:
            return int(exit_.code or 0)
        return 0

    return run


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


@pytest.fixture(scope="session")
def mnist_run(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LitLogReg trained for two epochs on real MNIST (a few seconds); returns the run's root folder."""
    root = tmp_path_factory.mktemp("mnist_run")
    command = [sys.executable, str(REPO / "train.py"), "fit", "--data.data_dir", str(real_data_dir)]
    command += ["--trainer.max_epochs", "2", "--trainer.default_root_dir", str(root)]
    command += ["--trainer.enable_progress_bar", "false"]
    subprocess.run(command, check=True, capture_output=True, cwd=root)
    return root


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """Headless Chromium through chromedriver (Debian's ``chromium`` and ``chromium-driver``)."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        message = f"{' and '.join(missing)} not found: apt-get install chromium chromium-driver"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {message}")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    yield driver
    driver.quit()
