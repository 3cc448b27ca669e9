"""Checkpoint files on their own: non-finite weights are never written and refused when loaded, the IO deletes
only its own files, checkpoints of earlier versions still load, an empty allowlist loads nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mnist_lightning import LitClassifier, LitCNN, LitLogReg, load_model
from mnist_lightning.checkpoint import Allowlist, AtomicCheckpointIO, build_model
from mnist_lightning.errors import CheckpointError
from mnist_lightning.models import ALLOWLIST, CosineToZeroLR


def test_non_finite_weights_are_never_written(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="NaN or infinite"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("nan")])}}, tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda state: state["linear.weight"].fill_(float("nan")), "linear.weight hold NaN or infinite values"),
        (lambda state: state["linear.bias"].fill_(float("inf")), "linear.bias hold NaN or infinite values"),
        (lambda state: state["temperature"].fill_(0.0), "temperature is 0, expected a fitted temperature"),
        (lambda state: state["temperature"].fill_(1e30), "temperature is 1e\\+30, expected a fitted temperature"),
        (lambda state: state["temperature"].fill_(1e-38), "temperature is 1e-38, expected a fitted temperature"),
        (lambda state: state["temperature"].fill_(1e-6), "temperature is 1e-06, expected a fitted temperature"),
        (lambda state: state["temperature"].fill_(float("nan")), "temperature is nan, expected a fitted temperature"),
        (lambda state: state["input_std"].fill_(-1.0), "input_std is -1, expected a pixel standard deviation"),
        (lambda state: state["input_std"].fill_(1e-30), "input_std is 1e-30, expected a pixel standard deviation"),
        (lambda state: state["input_mean"].fill_(1e30), "input_mean is 1e\\+30, expected a pixel mean"),
    ],
)
def test_a_checkpoint_that_would_answer_nan_is_refused_when_loaded(damage: Callable, message: str) -> None:
    model = LitLogReg()
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    damage(state)
    with pytest.raises(CheckpointError, match=message):
        build_model({"state_dict": state, "hyper_parameters": dict(model.hparams)}, ALLOWLIST)


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


def test_a_cnn_checkpoint_from_before_label_smoothing_loads_without_it(tmp_path: Path) -> None:
    model = LitCNN(channels=(4,), kernel_sizes=(3,), hidden_dim=0)
    hparams = {key: value for key, value in model.hparams.items() if key != "label_smoothing"}
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, path)
    loaded = load_model(path)
    assert type(loaded) is LitCNN
    assert loaded.label_smoothing == 0.0
    assert torch.equal(loaded.net[0].weight, model.net[0].weight)


def test_an_empty_allowlist_loads_no_model() -> None:
    model = LitLogReg()
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    with pytest.raises(CheckpointError, match=r"names model class 'mnist_lightning\.LitLogReg'; only \[\] are loaded"):
        build_model(checkpoint, Allowlist())
    assert type(build_model(checkpoint, ALLOWLIST)) is LitLogReg


@pytest.mark.parametrize("planted", ["run-folder", "checkpoints-folder", "checkpoint-file"])
def test_best_and_last_never_follow_a_link_out_of_the_runs_folder(tmp_path: Path, planted: str) -> None:
    """A linked ``version_N``, ``checkpoints`` or ``.ckpt``, however new, is not a run here: it is data pointing
    elsewhere, and a resume through it would write outside the folder the command looks in."""
    from mnist_lightning.checkpoint import resolve_checkpoint

    runs, outside = tmp_path / "lightning_logs", tmp_path / "outside"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {}, "epoch": 0}, runs / "version_0" / "checkpoints" / "last.ckpt")
    io.save_checkpoint({"state_dict": {}, "epoch": 5}, outside / "checkpoints" / "last.ckpt")
    if planted == "run-folder":
        (runs / "version_1").symlink_to(outside)
    elif planted == "checkpoints-folder":
        (runs / "version_1").mkdir()
        (runs / "version_1" / "checkpoints").symlink_to(outside / "checkpoints")
    else:
        (runs / "version_1" / "checkpoints").mkdir(parents=True)
        (runs / "version_1" / "checkpoints" / "last.ckpt").symlink_to(outside / "checkpoints" / "last.ckpt")
    path, _ = resolve_checkpoint("last", runs)
    assert path == runs / "version_0" / "checkpoints" / "last.ckpt"


def test_weights_that_overflow_never_make_an_answer_nan() -> None:
    """Finite weights pass the load checks; huge ones overflow to infinite logits, which must not become NaN."""
    model = LitLogReg()
    with torch.no_grad():
        model.linear.weight[0, :2] = 3e38  # two pixels of 1: the sum overflows to inf
        model.linear.weight[1, :2] = -3e38
    probabilities = model.probabilities(torch.ones(3, 1, 28, 28))
    assert probabilities.isfinite().all()
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(3))
