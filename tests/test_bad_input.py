"""Untrusted checkpoints, bad arguments, odd files and folders: one line each, never code from a checkpoint."""

from __future__ import annotations

import errno
import gzip
import shutil
import sys
from pathlib import Path

import pytest
import torch
from helpers import FAST, best_checkpoint, quiet_trainer, write_dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_lightning import LitLogReg, LitMLP, export, load_model, predict
from mnist_lightning.checkpoint import AtomicCheckpointIO
from mnist_lightning.data.idx import load_split
from mnist_lightning.errors import CheckpointError
from mnist_lightning.fileio import WriteError, atomic_write
from mnist_lightning.models import CosineToZeroLR

PAYLOADS = ["payload.touch", "payload.Evil", "payload", "this.s"]


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``tests/payload.py`` leaves its mark if anything of it is imported or called."""
    path = tmp_path / "payload-ran"
    monkeypatch.setenv("PAYLOAD_MARKER", str(path))
    return path


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


# --- 1. a checkpoint's hyperparameters never run code ----------------------------------------------------


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
        assert predict.main(["--ckpt", str(path), str(path)]) == 2
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


# --- 2. bad arguments: one line, exit 2 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--model.lr", "abc"), ["--model.lr", "expected float", "'abc'"]),
        (("--data.batch_size", "1.5"), ["--data.batch_size", "expected int", "'1.5'"]),
        (("--model.optimizer", "NotAnOptimizer"), ["--model.optimizer", "NotAnOptimizer", "SGD, Adam"]),
        (("--model.scheduler", "StepLR"), ["--model.scheduler", "step_size", "--model.scheduler.step_size"]),
        (("--model.scheduler", "ReduceLROnPlateau"), ["torch.optim.lr_scheduler.ReduceLROnPlateau", "ambiguity"]),
        (("--model", "LitFoo"), ["--model", "LitFoo", "LitLogReg, LitMLP, LitCNN"]),
        (("--model.optimizer", "SGD", "--model.optimizer.momentum", "-5"), ["--model.optimizer SGD", "momentum"]),
        (("--trainer.accelerator", "gpu"), ["--trainer.accelerator gpu", "this machine has none", "cpu"]),
        (("--trainer.accelerator", "mps"), ["--trainer.accelerator mps", "this machine has none"]),
        (("--torch_threads", "0"), ["--torch_threads must be >= 1", "got 0"]),
        (("--model.lr", "1e39"), ["lr must be a positive number a float32 can hold"]),
        (("--data.val_size", "abc"), ["--data.val_size", "int or float", "'abc'"]),
    ],
)
def test_bad_arguments_are_one_line_naming_option_value_and_what_is_accepted(
    run_cli, synthetic_dir: Path, capsys, monkeypatch: pytest.MonkeyPatch, args: tuple, expected: list[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for part in expected:
        assert part in err[0]


def test_a_model_class_other_than_the_checkpoints_is_refused(shared_run: Path, run_cli, capsys) -> None:
    assert run_cli("test", "--ckpt_path", str(best_checkpoint(shared_run)), "--model", "LitMLP") == 2
    assert "--model LitMLP does not match the checkpoint, which holds a LitLogReg" in capsys.readouterr().err


# --- 3. what a Lightning user expects to just work --------------------------------------------------------


def test_csv_logger_by_name_writes_beside_the_default_runs(run_cli, synthetic_dir: Path, tmp_path: Path) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, "--trainer.logger", "CSVLogger") == 0
    assert (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text().startswith("epoch")
    assert (tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_reduce_lr_on_plateau_steps_per_epoch_on_the_validation_loss(synthetic_dir: Path, tmp_path: Path) -> None:
    from mnist_lightning import MNISTDataModule

    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau
    trainer = quiet_trainer(tmp_path, max_epochs=2)
    trainer.fit(LitLogReg(scheduler=scheduler), MNISTDataModule(synthetic_dir, download=False, val_size=200))
    (config,) = trainer.lr_scheduler_configs
    assert (config.interval, config.monitor) == ("epoch", "val/loss")


def test_reduce_lr_on_plateau_by_full_path_trains_from_the_cli(run_cli, synthetic_dir: Path) -> None:
    scheduler = ("--model.scheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau")
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, *scheduler) == 0


@pytest.mark.parametrize(
    ("args", "files"),
    [
        (("--trainer.enable_checkpointing", "false"), []),
        (("--checkpoint", "null"), ["last.ckpt"]),
        (("--trainer.overfit_batches", "1"), ["epoch00-val_acc1.0000.ckpt", "last.ckpt"]),
    ],
    ids=["no-checkpointing", "no-best-checkpoint", "overfit-batches"],
)
def test_checkpoint_switches_and_overfit_batches_work(
    run_cli, synthetic_dir: Path, tmp_path: Path, args: tuple, files: list[str]
) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, *args) == 0
    assert sorted(p.name for p in tmp_path.rglob("*.ckpt")) == files
    if "--trainer.overfit_batches" in args:
        last = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)
        assert last["global_step"] == 2, "one batch per epoch"


# --- 4. divergence, with any optimizer ------------------------------------------------------------------


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


# --- 5. files and folders -------------------------------------------------------------------------------


def test_a_data_folder_with_only_gz_archives_is_used(tmp_path: Path, run_cli) -> None:
    raw = write_dataset(tmp_path / "data") / "MNIST" / "raw"
    for path in list(raw.iterdir()):
        with gzip.open(raw / f"{path.name}.gz", "wb") as archive:
            archive.write(path.read_bytes())
        path.unlink()
    args = ("--data.data_dir", str(tmp_path / "data"), "--data.download", "false", *FAST)
    assert run_cli("fit", *args) == 0
    assert len(list(raw.glob("*-ubyte"))) == 4


def test_a_damaged_gz_archive_is_named(tmp_path: Path, run_cli, capsys) -> None:
    raw = write_dataset(tmp_path / "data") / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    assert run_cli("fit", "--data.data_dir", str(tmp_path / "data"), *FAST) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "t10k-labels-idx1-ubyte.gz is not a valid gzip archive" in err[0]


def test_swapped_label_files_blame_the_labels(real_data_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(real_data_dir / "MNIST" / "raw", raw)
    (raw / "train-labels-idx1-ubyte").rename(raw / "swap")
    (raw / "t10k-labels-idx1-ubyte").rename(raw / "train-labels-idx1-ubyte")
    (raw / "swap").rename(raw / "t10k-labels-idx1-ubyte")
    for split, blamed in (("train", "train-labels-idx1-ubyte"), ("test", "t10k-labels-idx1-ubyte")):
        with pytest.raises(Exception, match=f"{blamed}: it holds .* labels where the {split} split has") as error:
            load_split(raw, "mnist", split)
        assert "swapped with" in str(error.value)


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


def test_outputs_into_a_folder_are_one_line(shared_run: Path, tmp_path: Path, capsys) -> None:
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(255, (10, 5, 16, 23))
    canvas.save(tmp_path / "digit.png")
    ckpt = str(best_checkpoint(shared_run))
    assert export.main(["--ckpt", ckpt, "--out", str(tmp_path)]) == 1
    assert f"Cannot write {tmp_path}: it is a folder" in capsys.readouterr().err
    assert predict.main(["--ckpt", ckpt, str(tmp_path / "digit.png"), "--csv", str(tmp_path)]) == 1
    assert f"Cannot write {tmp_path}: it is a folder" in capsys.readouterr().err


@pytest.mark.unit
@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (errno.EROFS, "the folder is on a read-only filesystem"),
        (errno.ENOSPC, "the disk is full"),
        (errno.EACCES, "the folder is not writable"),
    ],
)
def test_a_failed_write_names_path_and_cause_and_leaves_nothing(tmp_path: Path, code: int, cause: str) -> None:
    def write(stream) -> None:
        stream.write(b"partial data")
        raise OSError(code, "simulated")

    target = tmp_path / "out" / "model.pt"
    with pytest.raises(WriteError, match=f"Cannot write {target}: {cause}"):
        atomic_write(target, write)
    assert list(target.parent.iterdir()) == [], "no partial file is left, and its cleanup hid nothing"


# --- 7. small things ------------------------------------------------------------------------------------


def test_a_tiny_validation_set_is_warned_about(run_cli, synthetic_dir: Path, caplog) -> None:
    with pytest.warns(UserWarning, match="validates on 1 image"):
        assert (
            run_cli("fit", "--data.data_dir", str(synthetic_dir), "--data.val_size", "1", "--trainer.max_epochs", "1")
            == 0
        )


def test_load_from_checkpoint_refuses_another_class_and_unsafe_options(shared_run: Path) -> None:
    path = best_checkpoint(shared_run)
    with pytest.raises(CheckpointError, match="holds a LitLogReg, not a LitMLP"):
        LitMLP.load_from_checkpoint(path)
    with pytest.raises(CheckpointError, match="weights_only=False"):
        LitLogReg.load_from_checkpoint(path, weights_only=False)
    model = LitLogReg.load_from_checkpoint(path, lr=0.5)
    assert model.hparams.lr == 0.5
    assert model.scheduler_factory.func is CosineToZeroLR, "built from the allowlist, as a partial of the class"
