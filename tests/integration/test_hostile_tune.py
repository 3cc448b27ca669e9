"""mnist-tune run outside the repository: a search file that is missing, lacks a key, or names train.py configs
relative to another folder is refused in one line naming the file and the key; ``--help`` says what the file holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO

from mnist_lightning.commands import tune
from mnist_lightning.commands.runner import run
from mnist_lightning.tune.space import SEARCH_KEYS

CASES = {
    "no-space": ("study_name: x\n", "missing key 'space'"),
    "no-high": ("space:\n  model.lr: {low: 0.01}\n", "space, model.lr: missing key 'high'"),
    "no-low": ("space:\n  model.lr: {high: 0.1, log: true}\n", "space, model.lr: missing key 'low'"),
    "config-elsewhere": (
        "config: configs/default.yaml\nspace:\n  model.lr: {low: 0.01, high: 0.1}\n",
        "config: configs/default.yaml is not a file here",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_search_file_lacking_a_key_is_named_with_the_key(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # outside the repository: configs/default.yaml is not here
    text, said = CASES[case]
    search = tmp_path / "search.yaml"
    search.write_text(text)
    assert run(tune.main, ["--config", str(search)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --config {search}: "), err
    assert said in err, err
    assert err.count("\n") == 1, err
    assert "train.py fit --help" not in err


def test_the_repository_search_file_run_elsewhere_names_itself_and_its_config_key(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    search = REPO / "configs" / "search" / "logreg.yaml"
    assert run(tune.main, ["--config", str(search), "--n_trials", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --config {search}: config: configs/default.yaml"), err
    assert not (tmp_path / "search").exists(), "nothing is written before the search file is accepted"


def test_tune_help_says_what_a_search_file_holds(capsys: pytest.CaptureFixture) -> None:
    assert run(tune.main, ["--help"]) == 0
    out = capsys.readouterr().out
    assert "needs `space:`" in out
    assert all(key in out for key in SEARCH_KEYS)
    assert "relative to the folder" in out
