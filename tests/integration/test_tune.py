"""mnist-tune: trials are ordinary runs, the study continues, best.yaml reproduces the best
trial bitwise, several processes share one study, and bad input is one line."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from tune_helpers import SEARCH, small, tune

from mnist_lightning.tune import Tuner, load_search, storage

REPO = Path(__file__).resolve().parents[2]


def load(root: Path, name: str = "logreg") -> optuna.Study:
    storage = f"sqlite:///{root / 'search' / name / 'study.db'}"
    return optuna.load_study(study_name=name, storage=storage)


def test_trials_are_runs_and_best_yaml_reproduces_bitwise(
    run_cli, synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(REPO)  # the search file names configs/default.yaml relative to the repository
    root = tmp_path / "runs"
    args = ["--config", str(SEARCH / "logreg.yaml"), "--root", str(root), *small(synthetic_dir, epochs=2)]
    assert tune(*args, "--n_trials", "2") == 0
    assert tune(*args, "--n_trials", "3") == 0  # the same command again continues the study
    out = capsys.readouterr().out
    study = load(root)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)
    assert "trial  val/acc" in out
    assert "best trial" in out
    for trial in study.trials:
        run = root / "search" / "logreg" / "lightning_logs" / f"trial_{trial.number:04d}"
        assert trial.user_attrs["run"] == str(run)
        assert (run / "checkpoints" / "last.ckpt").is_file()
        assert list(run.glob("events.out.tfevents.*"))
        assert (run / "config.yaml").is_file()
        hparams = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
        assert hparams["lr"] == trial.params["model.lr"]
    best_yaml = root / "search" / "logreg" / "best.yaml"
    assert yaml.safe_load(best_yaml.read_text())["model"]["init_args"]["lr"] == study.best_params["model.lr"]
    for name in ("history", "importances", "parallel_coordinates"):
        assert (root / "search" / "logreg" / "plots" / f"{name}.html").is_file()
    # reproduce: a new run in another folder, its best val/acc equal to the trial's value, bit for bit
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_cli("fit", "--config", str(best_yaml)) == 0
    (last,) = elsewhere.glob("lightning_logs/version_0/checkpoints/last.ckpt")
    state = torch.load(last, weights_only=True)["callbacks"]
    (score,) = [value["best_model_score"] for key, value in state.items() if key.startswith("ModelCheckpoint")]
    assert float(score) == study.best_value
    trial_run = Path(study.best_trial.user_attrs["run"])
    theirs = torch.load(trial_run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    ours = torch.load(last, weights_only=True)["state_dict"]
    assert theirs.keys() == ours.keys()
    assert all(torch.equal(theirs[key], ours[key]) for key in theirs)  # the same weights, bit for bit


def test_a_trial_killed_mid_run_is_marked_failed_and_replaced(
    synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """What a process killed mid-trial leaves, on any machine: a RUNNING trial whose heartbeat stopped. Optuna's
    heartbeat (the grace period shortened here) marks it failed, and another trial takes its place."""
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(storage, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(storage, "GRACE_PERIOD", 1)
    root = tmp_path / "runs"
    args = ["--config", str(SEARCH / "logreg.yaml"), "--root", str(root), "--n_trials", "1", *small(synthetic_dir)]
    (root / "search" / "logreg").mkdir(parents=True)
    url = f"sqlite:///{root / 'search' / 'logreg' / 'study.db'}"
    study = optuna.create_study(
        study_name="logreg", storage=optuna.storages.RDBStorage(url, heartbeat_interval=1), direction="maximize"
    )
    study.set_user_attr("search", load_search(SEARCH / "logreg.yaml", {}).fingerprint())
    killed = study.ask()
    killed.set_user_attr("host", "elsewhere")
    killed.set_user_attr("pid", 4321)
    study._storage.record_heartbeat(killed._trial_id)  # its last heartbeat
    time.sleep(2.5)  # the grace period passes (SQLite's clock has whole seconds)
    assert tune(*args) == 0
    assert "trial 0 stopped mid-run (process 4321 on elsewhere): marked failed" in capsys.readouterr().out
    states = [t.state for t in load(root).trials]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert states[1:] == [optuna.trial.TrialState.COMPLETE]


def write_search(tmp_path: Path, space: str) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(f"study_name: bad\nconfig: configs/default.yaml\nspace:\n{space}")
    return path


@pytest.mark.parametrize(
    ("space", "said"),
    [
        ("  model.lrr: {low: 0.01, high: 0.1}\n", "search space: "),
        ("  model.lr: {low: 0.1, high: 0.01}\n", "space, model.lr: `low <= high` must hold"),
        ("  data.batch_size: {choices: []}\n", "space, data.batch_size: The `choices` must contain one or more"),
        ("  model.lr: {low: 0, high: 0.1, log: true}\n", "space, model.lr: `low > 0` must hold for `log=True`"),
    ],
    ids=["unknown-option", "empty-range", "no-choices", "log-from-zero"],
)
def test_bad_space_is_one_line_and_writes_nothing(
    space: str, said: str, synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(REPO)
    root = tmp_path / "runs"
    code = tune("--config", str(write_search(tmp_path, space)), "--root", str(root), *small(synthetic_dir, epochs=2))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    search = tmp_path / "search.yaml"
    assert err.startswith(f"error: {said}" if "lrr" in space else f"error: --config {search}: {said}"), err
    if "lrr" in space:
        assert "model.lrr" in err
    assert not root.exists()


def test_unreachable_storage_is_one_line(synthetic_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'study.db'}"
    args = ["--config", str(SEARCH / "logreg.yaml"), "--storage", url, "--root", str(tmp_path / "runs")]
    code = tune(*args, *small(synthetic_dir, epochs=2))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: --storage {url}: cannot open it"), err


def test_ddp_inside_a_trial_is_refused_before_any_trial(
    synthetic_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Ranks of a DDP trial would each run the search and draw their own parameters: refused in one line."""
    monkeypatch.chdir(REPO)
    root = tmp_path / "runs"
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    code = tune("--config", str(SEARCH / "logreg.yaml"), "--root", str(root), *small(synthetic_dir, epochs=2), *ddp)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert "trials run one process each" in err
    assert not (root / "search" / "logreg" / "lightning_logs").exists()


def test_a_study_of_another_space_is_refused(synthetic_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    root = tmp_path / "runs"
    first = write_search(tmp_path, "  model.lr: {low: 0.01, high: 0.1}\n")
    assert tune("--config", str(first), "--root", str(root), "--n_trials", "1", *small(synthetic_dir, epochs=2)) == 0
    second = write_search(tmp_path, "  model.lr: {low: 0.001, high: 0.1}\n")
    capsys.readouterr()
    assert tune("--config", str(second), "--root", str(root), "--n_trials", "2", *small(synthetic_dir, epochs=2)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "was created with another search space" in err, err
    assert len(load(root, "bad").trials) == 1


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_shipped_search_spaces_parse(name: str, synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    search = load_search(SEARCH / f"{name}.yaml", {})
    Tuner(
        search, Path("unused"), None, small(synthetic_dir, epochs=2)
    ).check_space()  # raises on an option train.py refuses
