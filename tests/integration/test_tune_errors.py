"""The search's own mistakes end in one line before anything is written: a storage that does not answer (its
password masked), an option every trial sets itself, a data folder that does not exist, an option train.py does
not know (named as train.py's, the program whose options they are)."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from tune_helpers import SEARCH, small, tune

from mnist_lightning.tune.storage import driver_message, mask_url

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ann:s3cret@db.example:5432/search", "postgresql://ann:***@db.example:5432/search"),
        ("postgresql://ann:p%40ss@db/search", "postgresql://ann:***@db/search"),
        ("postgresql://ann@db/search?password=s3cret", "postgresql://ann@db/search?password=***"),
        ("not a url://ann:s3cret@db", "(not a database URL; not shown, it may hold a password)"),
        ("sqlite:////tmp/study.db", "sqlite:////tmp/study.db"),
    ],
    ids=["password", "encoded", "query", "unparsable", "sqlite"],
)
def test_mask_url(url: str, shown: str) -> None:
    """The URL as every message shows it: its password field masked, never its text cut out of a message."""
    assert mask_url(url) == shown


@pytest.mark.parametrize("password", ["at", "s3cret", "p@ss"])
def test_a_driver_message_that_repeats_the_password_is_left_out(password: str) -> None:
    """A short or common-word password is not revealed by the gaps a masking of its text would leave."""
    url = f"postgresql://ann:{quote(password, safe='')}@db/search"
    said = driver_message(RuntimeError(f"connection to server at db failed for ann:{password}"), url)
    assert said == "the driver's message is left out: it repeats the password"
    assert driver_message(RuntimeError("connection refused"), "postgresql://ann:zz9plural@db/x") == "connection refused"


def test_a_storage_value_that_is_not_a_url_is_not_shown(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Where its password is cannot be known: the value is left out of the message whole."""
    root = tmp_path / "runs"
    code = tune("--config", str(SEARCH / "logreg.yaml"), "--storage", "not a url://ann:s3cret@db", "--root", str(root))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: --storage: not a database URL"), err
    assert "s3cret" not in err
    assert not root.exists()


def test_a_storage_password_is_never_printed(
    synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(REPO)
    url = "postgresql://ann:s3cret@127.0.0.1:9/search?connect_timeout=5"  # nothing listens on port 9
    root = tmp_path / "runs"
    code = tune("--config", str(SEARCH / "logreg.yaml"), "--storage", url, "--root", str(root), *small(synthetic_dir))
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith("error: --storage postgresql://ann:***@127.0.0.1:9/search"), err
    assert "s3cret" not in out + err
    assert not root.exists()  # before anything is written


def test_an_unreachable_storage_writes_nothing(
    synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(REPO)
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'study.db'}"
    root = tmp_path / "runs"
    code = tune("--config", str(SEARCH / "logreg.yaml"), "--storage", url, "--root", str(root), *small(synthetic_dir))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: --storage {url}: cannot open it"), err
    assert not root.exists()


@pytest.mark.parametrize("option", ["--trainer.default_root_dir", "--trainer.logger.init_args.version"])
def test_an_option_every_trial_sets_is_refused(
    option: str, synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Trials run in ROOT/search/STUDY: a --trainer.default_root_dir given to the search would be ignored."""
    monkeypatch.chdir(REPO)
    root = tmp_path / "runs"
    args = ["--config", str(SEARCH / "logreg.yaml"), "--root", str(root), "--n_trials", "1", *small(synthetic_dir)]
    code = tune(*args, option, str(tmp_path / "elsewhere"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: {option} "), err
    assert "--root" in err
    assert not root.exists()
    assert not (tmp_path / "elsewhere").exists()


def test_an_unknown_option_names_train_py(
    synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The options a search passes on are train.py's: its help is the one to read."""
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", [str(REPO / "mnist_lightning" / "commands" / "tune.py")])
    root = tmp_path / "runs"
    code = tune("--config", str(SEARCH / "logreg.yaml"), "--root", str(root), *small(synthetic_dir), "--trainer.nope")
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert "(see `train.py fit --help`)" in err, err


def test_a_missing_data_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(REPO)
    missing = tmp_path / "no-data"
    args = ["--config", str(SEARCH / "logreg.yaml"), "--root", str(tmp_path / "runs"), "--n_trials", "3"]
    # --timeout bounds the search that replaced the failed trials without end (it then ended 0)
    code = tune(*args, "--timeout", "60", "--data.data_dir", str(missing), "--data.download", "false")
    err = capsys.readouterr().err
    assert code == 2  # train.py's code for the same mistake
    assert err.count("\n") == 1, err
    assert err.startswith("error: the data files are not there"), err
    assert str(missing) in err
    assert "trials in a row" not in err  # the first trial stops the search: every trial would repeat it
