"""A checkpoint's hyperparameters never run code: not a scheduler that names a function, not fuzzed ones, through
any way in (fit, test, the predict command, ``load_model``, ``load_from_checkpoint``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from helpers import best_checkpoint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_lightning import LitLogReg, LitMLP, load_model
from mnist_lightning.commands import predict
from mnist_lightning.commands.runner import run
from mnist_lightning.errors import CheckpointError

PAYLOADS = ["payload.touch", "payload.Evil", "payload", "this.s"]


def assert_nothing_ran(marker: Path) -> None:
    assert not marker.exists(), marker.read_text()
    assert "payload" not in sys.modules
    assert "this" not in sys.modules, "a checkpoint made Python import `this`"


def crafted(shared_run: Path, folder: Path, **hparams: object) -> Path:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    checkpoint["hyper_parameters"].update(hparams)
    path = folder / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path


LAMBDA = {"class_path": "torch.optim.lr_scheduler.LambdaLR", "init_args": {"lr_lambda": "payload.touch"}}
HIDDEN_CALLABLE = {"class_path": "torch.optim.lr_scheduler.CyclicLR", "init_args": {"scale_fn": "payload.touch"}}


@pytest.mark.parametrize("scheduler", [LAMBDA, HIDDEN_CALLABLE], ids=["LambdaLR", "CyclicLR.scale_fn"])
@pytest.mark.parametrize(
    "entry", ["fit", "test", "predict-command", "load_model", "load_from_checkpoint"], ids=lambda e: e
)
def test_a_scheduler_naming_code_is_refused_everywhere(
    shared_run: Path, tmp_path: Path, run_cli, capsys, marker: Path, scheduler: dict, entry: str
) -> None:
    path = crafted(shared_run, tmp_path, scheduler=scheduler)
    if entry in ("fit", "test"):
        assert run_cli(entry, "--ckpt_path", str(path)) == 2, "refused before anything ran"
        message = capsys.readouterr().err
        assert len(message.strip().splitlines()) == 1
    elif entry == "predict-command":
        assert run(predict.main, ["--ckpt", str(path), str(path)]) == 2
        message = capsys.readouterr().err
    else:
        load = load_model if entry == "load_model" else LitLogReg.load_from_checkpoint
        with pytest.raises(CheckpointError) as error:
            load(path)
        message = str(error.value)
    assert "not a torch scheduler this project accepts" in message or "no argument 'scale_fn'" in message
    assert_nothing_ran(marker)


MODEL_KEYS = ["_class_path", "_instantiator", "lr", "optimizer", "scheduler", "hidden_dims", "input_dim"]
MODEL_KEYS += ["activation", "dropout", "num_classes", "scheduler_interval", "deskew"]
CLASS_PATHS = [*PAYLOADS, "torch.optim.SGD", "torch.optim.Adam", "torch.optim.lr_scheduler.StepLR"]
CLASS_PATHS += ["torch.optim.lr_scheduler.LambdaLR", "mnist_lightning.models.CosineToZeroLR", "mnist_lightning.LitMLP"]
NAMES = st.sampled_from(["lr_lambda", "scale_fn", "step_size", "gamma", "momentum", "lr", "mode", "monitor"]) | st.text(
    max_size=6
)
LEAF = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=12)
LEAF |= st.sampled_from(PAYLOADS)
SPEC = st.fixed_dictionaries(
    {"class_path": st.sampled_from(CLASS_PATHS)}, optional={"init_args": st.dictionaries(NAMES, LEAF, max_size=3)}
)
TREE = st.recursive(LEAF | SPEC, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3))
HPARAMS = st.dictionaries(st.sampled_from(MODEL_KEYS) | NAMES, TREE | SPEC, max_size=6)
FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture], "derandomize": True}


@settings(max_examples=150, **FUZZ)
@given(changes=HPARAMS, replace=st.booleans())
def test_fuzzed_hyperparameters_never_import_or_call_anything_through_load_model(
    shared_run: Path, tmp_path_factory: pytest.TempPathFactory, marker: Path, changes: dict, replace: bool
) -> None:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    checkpoint["hyper_parameters"] = changes if replace else {**checkpoint["hyper_parameters"], **changes}
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.ckpt"
    torch.save(checkpoint, path)
    try:
        model = load_model(path)
    except CheckpointError:
        pass
    else:
        assert isinstance(model, (LitLogReg, LitMLP))
    assert_nothing_ran(marker)


@settings(max_examples=25, **FUZZ)
@given(changes=HPARAMS, data=st.dictionaries(st.sampled_from(["dataset", "val_size", "seed", "data_dir"]), TREE))
def test_fuzzed_checkpoints_never_import_or_call_anything_through_the_cli(
    shared_run: Path, synthetic_dir: Path, run_cli, capsys, marker: Path, changes: dict, data: dict, tmp_path: Path
) -> None:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    checkpoint["hyper_parameters"].update(changes)
    checkpoint["datamodule_hyper_parameters"].update(data)
    path = tmp_path / "fuzz.ckpt"
    torch.save(checkpoint, path)
    code = run_cli("validate", "--ckpt_path", str(path), "--data.data_dir", str(synthetic_dir))
    err = capsys.readouterr().err
    assert code in (0, 1, 2)
    assert "Traceback" not in err
    assert_nothing_ran(marker)
