"""What the search's tests share: running ``mnist-tune`` in-process, and tiny trials."""

from __future__ import annotations

from pathlib import Path

from mnist_lightning.commands.runner import run
from mnist_lightning.commands.tune import main

SEARCH = Path(__file__).resolve().parents[1] / "configs" / "search"
"""The shipped search files."""


def tune(*args: str) -> int:
    """Run the search in-process; returns its exit code (its error, if any, is one line on stderr)."""
    return run(main, list(args))


def small(data_dir: Path, epochs: int = 1) -> list[str]:
    """Every trial: ``epochs`` short epochs on the synthetic data."""
    return ["--data.data_dir", str(data_dir), "--data.val_size", "200", "--trainer.max_epochs", str(epochs)]
