"""Fixtures of the system tests alone: the real MNIST files, a model trained on them in a child process, servers
started as a user starts them, and a headless browser."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO, free_port
from serve_helpers import LiveServer, serve_command, wait_until_serving

REAL_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def real_data_dir() -> Iterator[Path]:
    """The four original MNIST files; CI has them, so their absence is a failure, never a skip. The folder is
    shared and must stay as it was: nothing may be written into it (root could, whatever its permissions)."""
    raw = REAL_DATA / "MNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte").is_file(), f"the real MNIST files are expected in {raw}"
    before = sorted((path.name, path.stat().st_mtime_ns) for path in REAL_DATA.rglob("*"))
    yield REAL_DATA
    assert sorted((path.name, path.stat().st_mtime_ns) for path in REAL_DATA.rglob("*")) == before


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


@pytest.fixture(scope="module")
def live(mnist_run: Path) -> Iterator[LiveServer]:
    """``mnist-serve --ckpt best`` as a user starts it, but with batching on (the in-process
    tests cover the default, off) and an upload timeout of 1 s."""
    port = free_port()
    command = [sys.executable, "-m", "mnist_lightning.commands.serve", "--ckpt", "best", "--root", str(mnist_run)]
    command += ["--port", str(port), "--upload-timeout", "1", "--max-batch-size", "8", "--batch-timeout", "0.02"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout.readline().startswith("Loading ")
    wait_until_serving(process, port)
    banner = process.stdout.readline()  # announced once /health answers 200
    yield LiveServer(process, port, banner)
    process.send_signal(signal.SIGTERM)
    process.wait(30)


@pytest.fixture
def collecting_server(mnist_run: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """``mnist-serve --ckpt best --collect DIR`` plus the test's options; yields (url, DIR)."""
    folder, port = tmp_path / "corrections", free_port()
    command = serve_command("best", port, "--root", str(mnist_run), "--collect", str(folder), *request.param)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert process.stdout.readline().startswith("Loading ")
        assert process.stdout.readline() == f"Saving corrections into {folder}/<digit>/\n"
        wait_until_serving(process, port)
        assert process.stdout.readline().startswith("Serving ")
        yield f"http://127.0.0.1:{port}", folder
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
