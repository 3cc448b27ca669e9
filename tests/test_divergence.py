"""A run that diverges, with any optimizer or precision, ends in one line naming the cause and leaves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FAST


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (("--model.optimizer", "SGD", "--model.lr", "1e37"), "smaller learning rate than --model.lr 1e+37"),
        (("--trainer.precision", "16-true"), "eps 1e-08 rounds to 0"),
    ],
    ids=["huge-lr", "fp16-adam-eps"],
)
def test_divergence_is_one_line_naming_the_cause_and_leaves_nothing(
    run_cli, synthetic_dir: Path, tmp_path: Path, capsys, args: tuple, cause: str
) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, *args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "Training diverged" in err[0]
    assert cause in err[0]
    assert list(tmp_path.rglob("*.ckpt")) == []
    assert list((tmp_path / "lightning_logs").iterdir()) == [], "no empty version_N is left behind"


def test_an_overflow_inside_the_optimizer_step_ends_in_one_line(run_cli, synthetic_dir: Path, capsys) -> None:
    """1e38 passes the lr check (float32 holds it), but Adam's first step divides it by 0.1: torch raises."""
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, "--model.lr", "1e38") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Training diverged: Adam's step overflowed"), err
    assert "--model.lr 1e+38" in err
    assert len(err.splitlines()) == 1
