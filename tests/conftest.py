"""Shared fixtures: small synthetic IDX datasets, the real MNIST files, and an in-process CLI runner."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import write_dataset

from mnist_lightning.cli import main

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data"
QUIET = ("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false")


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir with small synthetic MNIST files (1,200 training and 300 test images)."""
    return write_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The four original MNIST files; CI has them, so their absence is a failure, never a skip."""
    raw = REAL_DATA / "MNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte").is_file(), f"the real MNIST files are expected in {raw}"
    return REAL_DATA


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run ``train.py`` in-process with the given arguments, in a fresh working directory.

    Returns the exit code (0 when it returned normally).
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py"])

    def run(subcommand: str, *args: str) -> int:
        try:
            main([subcommand, *QUIET, *args])
        except SystemExit as exit_:
            return int(exit_.code or 0)
        return 0

    return run
