"""The search's seed reproduces a search: the same command with the same seed draws the same trials (one worker),
in a process of its own each time (the process id no longer enters the sampler's seed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

REPO = Path(__file__).resolve().parents[1]
SEARCH = REPO / "configs" / "search"
TINY = [
    "--data.val_size",
    "200",
    "--trainer.max_epochs",
    "1",
    "--trainer.limit_train_batches",
    "2",
    "--trainer.limit_val_batches",
    "1",
]


def search(root: Path, data_dir: Path, seed: str) -> list[dict]:
    command = [sys.executable, "-m", "mnist_lightning.tune", "--config", str(SEARCH / "logreg.yaml"), "--seed", seed]
    command += ["--root", str(root), "--n_trials", "2", "--data.data_dir", str(data_dir), *TINY]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    storage = f"sqlite:///{root / 'search' / 'logreg' / 'study.db'}"
    return [trial.params for trial in optuna.load_study(study_name="logreg", storage=storage).trials]


@pytest.mark.slow
def test_the_same_seed_draws_the_same_trials(synthetic_dir: Path, tmp_path: Path) -> None:
    first = search(tmp_path / "first", synthetic_dir, "7")
    assert len(first) == 2
    assert first[0] != first[1]  # every trial draws afresh
    assert search(tmp_path / "again", synthetic_dir, "7") == first
