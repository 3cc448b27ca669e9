"""A search file's values are checked before anything is written (its ranges by Optuna's distributions): wrong
types, a pruner typo, log with step, a study name that is not a folder name are one line naming the file and the
key, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from tune_helpers import tune

from mnist_lightning.errors import ConfigError
from mnist_lightning.tune import load_search

REPO = Path(__file__).resolve().parents[2]
GOOD_SPACE = "space:\n  model.lr: {low: 0.01, high: 0.1}\n"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("n_trials: abc\n" + GOOD_SPACE, "n_trials: expected a whole number >= 1, got 'abc'"),
        ("timeout: soon\n" + GOOD_SPACE, "timeout: expected seconds (a number > 0) or null, got 'soon'"),
        ("seed: x\n" + GOOD_SPACE, "seed: expected a whole number from 0 to"),
        ("fixed: 5\n" + GOOD_SPACE, "fixed: expected a mapping of train.py options"),
        ("pruner: {n_startup_trial: 4}\n" + GOOD_SPACE, "pruner: MedianPruner got an unexpected keyword"),
        ("pruner: {n_warmup_steps: -1}\n" + GOOD_SPACE, "pruner: Number of warmup steps cannot be negative"),
        ("study_name: ../elsewhere\n" + GOOD_SPACE, "study_name: expected a name of letters"),
        ("space:\n  model.lr: {low: 0.01, high: 0.1, step: x}\n", "model.lr: low, high (and step) must be numbers"),
        ("space:\n  model.lr: {low: 0.01, high: 0.1, log: true, step: 0.01}\n", "model.lr: The parameter `step`"),
        ("space:\n  model.lr: {low: 0.01, high: 0.1, lg: true}\n", "space, model.lr: expected {choices"),
    ],
    ids=[
        "n_trials",
        "timeout",
        "seed",
        "fixed",
        "pruner-typo",
        "pruner-negative",
        "study-name",
        "step",
        "log-step",
        "range-typo",
    ],
)
def test_a_wrong_value_is_one_line_and_writes_nothing(
    text: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(REPO)
    search = tmp_path / "search.yaml"
    search.write_text("config: configs/default.yaml\n" + text)
    root = tmp_path / "runs"
    code = tune("--config", str(search), "--root", str(root), "--data.data_dir", str(tmp_path / "data"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert said in err, err
    assert err.startswith(f"error: --config {search}: "), err  # every mistake of the file names the file
    assert "storage" not in err  # a pruner typo is the search file's, not the database's
    assert not root.exists()


def test_a_command_line_override_is_named_as_the_option(tmp_path: Path) -> None:
    search = tmp_path / "search.yaml"
    search.write_text(GOOD_SPACE)
    with pytest.raises(ConfigError, match=r"^--n_trials: expected a whole number >= 1, got 0$"):
        load_search(search, {"n_trials": 0})
