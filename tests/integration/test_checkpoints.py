"""Checkpoint files: atomic writes under SIGKILL, damaged files, crafted and malicious checkpoints, old ones."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import best_checkpoint, run_folder

from mnist_lightning import LitClassifier, LitCNN, LitLogReg, LitMLP, load_model, predict
from mnist_lightning.checkpoint import Allowlist, AtomicCheckpointIO, build_model
from mnist_lightning.errors import CheckpointError
from mnist_lightning.models import ALLOWLIST, CosineToZeroLR

REPO = Path(__file__).resolve().parents[1]

SAVER = """
import os, sys, torch
from mnist_lightning.checkpoint import AtomicCheckpointIO
for _ in sys.stdin:  # a line starts one saver process: forked, so the imports are paid once
    pid = os.fork()
    if pid == 0:
        io = AtomicCheckpointIO()
        checkpoint = {"state_dict": {"w": torch.randn(4_000_000)}, "step": 0}
        print("ready", os.getpid(), flush=True)
        while True:
            checkpoint["step"] += 1
            io.save_checkpoint(checkpoint, sys.argv[1])
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""


@pytest.mark.slow
def test_killed_saves_leave_an_intact_checkpoint_and_no_partial_files(tmp_path: Path) -> None:
    """SIGKILL at random moments of back-to-back 16 MB saves, with $TMPDIR on another filesystem if possible."""
    target = tmp_path / "ckpts" / "last.ckpt"
    tmpdir = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path
    scratch = tmpdir / f"ckpt-test-{os.getpid()}"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(scratch)}
    rng = random.Random(0)
    savers = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=REPO
    )
    children: list[int] = []
    try:
        for _ in range(6):
            savers.stdin.write(b"start\n")
            savers.stdin.flush()
            ready, pid = savers.stdout.readline().split()
            assert ready == b"ready"
            children.append(int(pid))
            time.sleep(rng.uniform(0.05, 0.6))
            os.kill(children[-1], signal.SIGKILL)
            assert savers.stdout.readline().strip() == b"reaped"
            children.pop()
            if target.exists():
                assert torch.load(target, weights_only=True)["step"] >= 1
            for leftover in target.parent.glob(".*"):  # only a kill between naming and renaming leaves one
                assert torch.load(leftover, weights_only=True)["step"] >= 1, "never a half-written file"
            assert list(scratch.iterdir()) == [], "nothing is written outside the target folder"
        savers.stdin.close()
        assert savers.wait(timeout=60) == 0
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "step": 0}, target)
        assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"], "the next save removes leftovers"
    finally:
        for pid in children:  # a failed assertion must not leave a saver running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        savers.kill()
        savers.wait()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.unit
def test_non_finite_weights_are_never_written(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="NaN or infinite"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("nan")])}}, tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda state: state["linear.weight"].fill_(float("nan")), "linear.weight hold NaN or infinite values"),
        (lambda state: state["linear.bias"].fill_(float("inf")), "linear.bias hold NaN or infinite values"),
        (lambda state: state["temperature"].fill_(0.0), "temperature is 0.0, expected a positive number"),
        (lambda state: state["input_std"].fill_(-1.0), "input_std is -1.0, expected a positive number"),
    ],
)
def test_a_checkpoint_that_would_answer_nan_is_refused_when_loaded(damage: Callable, message: str) -> None:
    model = LitLogReg()
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    damage(state)
    with pytest.raises(CheckpointError, match=message):
        build_model({"state_dict": state, "hyper_parameters": dict(model.hparams)}, ALLOWLIST)


@pytest.mark.unit
def test_a_checkpoint_cannot_make_the_run_delete_files_outside_its_folder(tmp_path: Path) -> None:
    """ModelCheckpoint deletes what a checkpoint's best_k_models names; the IO deletes only its own files."""
    victim = tmp_path / "precious.ckpt"
    victim.write_text("keep me")
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {}}, tmp_path / "run" / "epoch00.ckpt")
    with pytest.warns(UserWarning, match="Not removing"):
        io.remove_checkpoint(victim)
    assert victim.read_text() == "keep me"
    io.remove_checkpoint(tmp_path / "run" / "epoch00.ckpt")
    assert not (tmp_path / "run" / "epoch00.ckpt").exists()


# --- best / last ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["best", "last"])
def test_ckpt_path_best_and_last_find_the_latest_run(
    trained: Path, synthetic_dir: Path, run_cli, which: str, caplog
) -> None:
    assert run_cli("test", "--ckpt_path", which, "--data.data_dir", str(synthetic_dir)) == 0
    expected = best_checkpoint(trained) if which == "best" else run_folder(trained) / "checkpoints" / "last.ckpt"
    assert f"--ckpt_path {which}: {expected.relative_to(trained)}" in caplog.text


def test_ckpt_path_last_without_any_run_fails_loudly(run_cli, synthetic_dir: Path, capsys) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), "--ckpt_path", "last") == 2
    assert "no checkpoint found" in capsys.readouterr().err


def test_a_damaged_last_checkpoint_falls_back_to_the_newest_intact_one(
    trained: Path, synthetic_dir: Path, run_cli, caplog
) -> None:
    checkpoints = run_folder(trained) / "checkpoints"
    (checkpoints / "last.ckpt").write_bytes((checkpoints / "last.ckpt").read_bytes()[:5000])
    best = best_checkpoint(trained)
    assert best.name.startswith("epoch00"), "the fallback resumes from epoch 0 and trains epoch 1 again"
    assert run_cli("fit", "--ckpt_path", "last", "--data.data_dir", str(synthetic_dir)) == 0
    assert f"--ckpt_path last: {best.relative_to(trained)}" in caplog.text
    assert "skipped" in caplog.text
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 1


def test_only_damaged_checkpoints_fail_loudly(trained: Path, run_cli, capsys) -> None:
    for path in (run_folder(trained) / "checkpoints").glob("*.ckpt"):
        path.write_bytes(b"not a checkpoint")
    assert run_cli("fit", "--ckpt_path", "last") == 2
    assert "no intact checkpoint" in capsys.readouterr().err


# --- crafted and malicious checkpoints, through every way in ---------------------------------------------


def refuses_via_cli(path: Path, run_cli, capsys) -> str:
    assert run_cli("test", "--ckpt_path", str(path)) == 2
    return capsys.readouterr().err


def refuses_via_load_model(path: Path, run_cli, capsys) -> str:
    with pytest.raises(CheckpointError) as error:
        load_model(path)
    return str(error.value)


def refuses_via_predict_command(path: Path, run_cli, capsys) -> str:
    assert predict.main(["--ckpt", str(path), str(path)]) == 2
    return capsys.readouterr().err


ENTRY_POINTS: dict[str, Callable[..., str]] = {
    "train.py": refuses_via_cli,
    "load_model": refuses_via_load_model,
    "predict": refuses_via_predict_command,
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ({"input_dim": 400_000_000}, "parameters, more than"),
        ({"_class_path": "subprocess.Popen"}, "names model class 'subprocess.Popen'; only ["),
        ({"optimizer": {"class_path": "os.system", "init_args": {}}}, "is not a torch optimizer"),
        ({"_instantiator": "os.system"}, "instantiator 'os.system'"),
    ],
    ids=["huge_layer", "foreign_class", "foreign_optimizer", "foreign_instantiator"],
)
def test_crafted_hyperparameters_are_refused_before_anything_is_built(
    shared_run: Path, run_cli, capsys, tmp_path: Path, tamper: dict, message: str, entry: str
) -> None:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    checkpoint["hyper_parameters"].update(tamper)
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    assert message in ENTRY_POINTS[entry](crafted, run_cli, capsys)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_checkpoint_carrying_code_is_refused_and_never_runs(tmp_path: Path, run_cli, capsys, entry: str) -> None:
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": Payload()}}, evil)
    assert "could run arbitrary code" in ENTRY_POINTS[entry](evil, run_cli, capsys)
    assert not marker.exists()


def test_weights_only_false_is_refused(shared_run: Path, run_cli, capsys) -> None:
    assert run_cli("test", "--ckpt_path", str(best_checkpoint(shared_run)), "--weights_only", "false") == 2
    assert "--weights_only false is refused" in capsys.readouterr().err


def test_checkpoint_paths_that_are_folders_or_other_projects_checkpoints_are_one_line(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys
) -> None:
    foreign_keys = torch.load(best_checkpoint(shared_run), weights_only=True)
    foreign_keys["state_dict"] = {"encoder.weight": torch.zeros(3, 3)}
    torch.save(foreign_keys, tmp_path / "other_keys.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"_class_path": "other.Net"}}, tmp_path / "a")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "no_hparams.ckpt")
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "bare_state_dict.pt")
    cases = {
        tmp_path: "is a folder",
        tmp_path / "other_keys.ckpt": "weights do not fit LitLogReg",
        tmp_path / "a": "names model class 'other.Net'",
        tmp_path / "no_hparams.ckpt": "holds no model hyperparameters",
        tmp_path / "bare_state_dict.pt": "not a Lightning checkpoint",
    }
    for path, message in cases.items():
        assert run_cli("test", "--ckpt_path", str(path), "--data.data_dir", str(synthetic_dir)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, (path, err)
        assert message in err[0], (path, err)
        assert predict.main(["--ckpt", str(path), str(path)]) == 2
        assert message in capsys.readouterr().err


def test_a_model_class_other_than_the_checkpoints_is_refused(shared_run: Path, run_cli, capsys) -> None:
    assert run_cli("test", "--ckpt_path", str(best_checkpoint(shared_run)), "--model", "LitMLP") == 2
    assert "--model LitMLP does not match the checkpoint, which holds a LitLogReg" in capsys.readouterr().err


def test_load_from_checkpoint_refuses_another_class_and_unsafe_options(shared_run: Path) -> None:
    path = best_checkpoint(shared_run)
    with pytest.raises(CheckpointError, match="holds a LitLogReg, not a LitMLP"):
        LitMLP.load_from_checkpoint(path)
    with pytest.raises(CheckpointError, match="weights_only=False"):
        LitLogReg.load_from_checkpoint(path, weights_only=False)
    model = LitLogReg.load_from_checkpoint(path, lr=0.5)
    assert model.hparams.lr == 0.5
    assert model.scheduler_factory.func is CosineToZeroLR, "built from the allowlist, as a partial of the class"


# --- checkpoints from before the model owned its normalization --------------------------------------------


def test_a_checkpoint_from_before_the_model_owned_its_normalization_still_loads(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys
) -> None:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    mean, std = (checkpoint["state_dict"].pop(key).item() for key in ("input_mean", "input_std"))
    checkpoint["MNISTDataModule"].update(mean=mean, std=std)  # where version 0.1 kept them
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    model = load_model(old)
    assert (model.input_mean.item(), model.input_std.item()) == (mean, std)
    assert run_cli("test", "--ckpt_path", str(old), "--data.data_dir", str(synthetic_dir)) == 0
    del checkpoint["MNISTDataModule"]
    torch.save(checkpoint, old)
    with pytest.raises(CheckpointError, match=r"weights do not fit LitLogReg \(missing \['input_mean', 'input_std'\]"):
        load_model(old)


# --- checkpoints of earlier versions -------------------------------------------------------------------------

HPARAMS_0_2 = {  # what version 0.2 (commit 25e6dfb, models.py in one file) wrote for a default LitLogReg
    "input_dim": 784,
    "num_classes": 10,
    "lr": 0.02,
    "optimizer": {"class_path": "torch.optim.Adam", "init_args": {}},
    "scheduler": {"class_path": "mnist_lightning.models.CosineToZeroLR", "init_args": {}},
    "scheduler_interval": "step",
    "_class_path": "mnist_lightning.LitLogReg",
    "_instantiator": "lightning.pytorch.cli.instantiate_module",
}


@pytest.mark.unit
@pytest.mark.parametrize("class_path", ["mnist_lightning.LitLogReg", "mnist_lightning.models.LitLogReg", None])
def test_checkpoints_of_earlier_versions_still_load(tmp_path: Path, class_path: str | None) -> None:
    hparams = {**HPARAMS_0_2, "_class_path": class_path}
    if class_path is None:  # the oldest checkpoints name no class: they are LitLogReg's
        del hparams["_class_path"]
    state = LitLogReg().state_dict()
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    for model in (load_model(path), LitLogReg.load_from_checkpoint(path), LitClassifier.load_from_checkpoint(path)):
        assert type(model) is LitLogReg
        assert torch.equal(model.linear.weight, state["linear.weight"])
        assert model.deskew is False  # an option added later: the old checkpoint reads its pixels as it did
        assert model.scheduler_factory.func is CosineToZeroLR
        assert model.hparams.scheduler["class_path"] == "mnist_lightning.models.CosineToZeroLR"


@pytest.mark.unit
def test_a_cnn_checkpoint_from_before_label_smoothing_loads_without_it(tmp_path: Path) -> None:
    model = LitCNN(channels=(4,), kernel_sizes=(3,), hidden_dim=0)
    hparams = {key: value for key, value in model.hparams.items() if key != "label_smoothing"}
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, path)
    loaded = load_model(path)
    assert type(loaded) is LitCNN
    assert loaded.label_smoothing == 0.0
    assert torch.equal(loaded.net[0].weight, model.net[0].weight)


@pytest.mark.unit
def test_an_empty_allowlist_loads_no_model() -> None:
    model = LitLogReg()
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    with pytest.raises(CheckpointError, match=r"names model class 'mnist_lightning\.LitLogReg'; only \[\] are loaded"):
        build_model(checkpoint, Allowlist())
    assert type(build_model(checkpoint, ALLOWLIST)) is LitLogReg
