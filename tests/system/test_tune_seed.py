"""The search's seed reproduces a search: the same command with the same seed draws the same trials (one worker),
in a process of its own each time (the process id no longer enters the sampler's seed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[2]
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


def searches(roots: list[Path], data_dir: Path, seed: str) -> list[list[dict]]:
    """The same search command in one process per root, all started at once; each one's trials' parameters."""
    command = [sys.executable, "-m", "mnist_lightning.commands.tune", "--config", str(SEARCH / "logreg.yaml")]
    command += ["--seed", seed, "--n_trials", "2", "--data.data_dir", str(data_dir), *TINY]
    processes = [
        subprocess.Popen([*command, "--root", str(root)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for root in roots
    ]  # fmt: skip
    try:
        errors = [process.communicate(timeout=600)[1] for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    for process, error in zip(processes, errors, strict=True):
        assert process.returncode == 0, error
    storages = [f"sqlite:///{root / 'search' / 'logreg' / 'study.db'}" for root in roots]
    return [[t.params for t in optuna.load_study(study_name="logreg", storage=url).trials] for url in storages]


def test_the_same_seed_draws_the_same_trials(synthetic_dir: Path, tmp_path: Path) -> None:
    first, again = searches([tmp_path / "first", tmp_path / "again"], synthetic_dir, "7")
    assert len(first) == 2
    assert first[0] != first[1]  # every trial draws afresh
    assert again == first
