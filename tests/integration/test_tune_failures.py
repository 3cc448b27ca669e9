"""A mistake every trial would repeat stops the search in one line instead of replacing failed trials without end:
a metric no run logs (after the first validation), and a bound on trials that fail in a row."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from tune_helpers import tune

from mnist_lightning.errors import TrainingDivergedError
from mnist_lightning.tune.runner import Tuner

REPO = Path(__file__).resolve().parents[2]


def write_search(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(
        f"study_name: typo\nconfig: configs/default.yaml\n{extra}space:\n  model.lr: {{low: 0.01, high: 0.1}}\n"
    )
    return path


def trials(root: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="typo", storage=f"sqlite:///{root / 'search/typo/study.db'}").trials


def test_a_metric_no_run_logs_stops_the_search_at_the_first_trial(
    synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(REPO)
    root = tmp_path / "runs"
    search = write_search(tmp_path, "metric: val/accuracy\n")
    data = ["--data.data_dir", str(synthetic_dir), "--data.val_size", "200", "--trainer.max_epochs", "1"]
    # --timeout bounds the search that replaced failed trials without end: it would end 0 after many trials
    code = tune("--config", str(search), "--root", str(root), "--n_trials", "2", "--timeout", "120", *data)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith("error: metric 'val/accuracy': the runs do not log it"), err
    assert "val/acc" in err.removeprefix("error: metric 'val/accuracy'")  # what they do log
    assert [t.state for t in trials(root)] == [optuna.trial.TrialState.FAIL]
    assert len(list((root / "search" / "typo" / "lightning_logs").iterdir())) <= 1  # one run folder at most


def test_trials_failing_in_a_row_stop_the_search(
    synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A diverged trial is replaced (other values may train), but not without end."""
    monkeypatch.chdir(REPO)

    def diverge(self: Tuner, trial: optuna.Trial) -> float:
        raise TrainingDivergedError(f"trial {trial.number}: the loss became NaN")

    monkeypatch.setattr(Tuner, "run_trial", diverge)
    root = tmp_path / "runs"
    search = write_search(tmp_path, "max_failures: 3\n")
    code = tune("--config", str(search), "--root", str(root), "--n_trials", "50", "--timeout", "120",
                "--data.data_dir", str(synthetic_dir))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith("error: 3 trials in a row failed, the last with: trial 2: the loss became NaN"), err
    assert [t.state for t in trials(root)] == [optuna.trial.TrialState.FAIL] * 3
    assert trials(root)[0].user_attrs["error"] == "trial 0: the loss became NaN"
