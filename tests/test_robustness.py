"""Hard to break: damaged data, hanging downloads, killed saves and runs, NaN, crafted checkpoints, DDP."""

from __future__ import annotations

import gzip
import http.server
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import idx_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_lightning import data as data_module
from mnist_lightning.checkpoints import AtomicCheckpointIO
from mnist_lightning.data import download, load_split, parse_idx
from mnist_lightning.errors import DataError

REPO = Path(__file__).resolve().parents[1]
RAW_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FAST = ("--data.val_size", "200", "--data.batch_size", "100")


@pytest.fixture
def real_copy(real_data_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the real raw folder, to damage."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_NAMES:
        shutil.copyfile(real_data_dir / "MNIST" / "raw" / name, raw / name)
    return raw


# --- data integrity ----------------------------------------------------------------------------------------


def test_a_flipped_bit_is_caught_by_the_checksum(real_copy: Path) -> None:
    path = real_copy / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[123_456] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="MD5") as error:
        load_split(real_copy, "mnist", "train")
    assert str(path) in str(error.value)
    assert "Delete it" in str(error.value)


def test_an_image_file_swapped_for_the_test_sets_is_caught(real_copy: Path) -> None:
    shutil.copyfile(real_copy / "t10k-images-idx3-ubyte", real_copy / "train-images-idx3-ubyte")
    with pytest.raises(DataError, match="10,000 images but train-labels-idx1-ubyte holds 60,000 labels"):
        load_split(real_copy, "mnist", "train")


def test_a_truncated_file_is_named_with_its_expected_size(real_copy: Path) -> None:
    path = real_copy / "train-images-idx3-ubyte"
    with path.open("r+b") as stream:
        stream.truncate(1_000_000)
    with pytest.raises(DataError, match=r"1,000,000 bytes long, expected 47,040,016"):
        load_split(real_copy, "mnist", "train")


def test_a_bad_magic_number_is_a_clear_error(real_copy: Path) -> None:
    path = real_copy / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])
    with pytest.raises(DataError, match="bad IDX magic number 00000803"):
        load_split(real_copy, "mnist", "test")


def test_the_checksum_verdict_is_cached_until_the_file_changes(real_copy: Path, monkeypatch) -> None:
    load_split(real_copy, "mnist", "test")
    assert (real_copy / ".verified.json").is_file()

    def no_hashing(data: bytes) -> str:
        raise AssertionError("verified files must not be hashed again")

    monkeypatch.setattr(data_module, "_md5", no_hashing)
    load_split(real_copy, "mnist", "test")
    path = real_copy / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes())  # same bytes, new mtime: hashed again
    with pytest.raises(AssertionError, match="hashed again"):
        load_split(real_copy, "mnist", "test")


def test_the_cli_reports_damaged_data_in_one_line(real_copy: Path, run_cli, capsys) -> None:
    (real_copy / "train-labels-idx1-ubyte").write_bytes(b"garbage")
    assert run_cli("fit", "--data.data_dir", str(real_copy.parents[1])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "train-labels-idx1-ubyte" in err[0]
    assert "--data.data_dir" in err[0]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000), ndim=st.sampled_from([1, 3]))
def test_random_bytes_never_crash_the_idx_parser(data: bytes, ndim: int) -> None:
    try:
        tensor = parse_idx(Path("fuzz"), data, ndim)
    except DataError:
        return
    assert tensor.dim() == ndim


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=0, max_value=16 + 5 * 784 - 1), count=st.integers(1, 5))
def test_truncated_idx_files_are_refused(cut: int, count: int) -> None:
    whole = idx_bytes(torch.zeros(count, 28, 28, dtype=torch.uint8))
    if cut >= len(whole):
        return
    with pytest.raises(DataError):
        parse_idx(Path("fuzz"), whole[:cut], ndim=3)


# --- downloads -------------------------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.fixture
def mirror(real_data_dir: Path, tmp_path: Path) -> Iterator[str]:
    """An HTTP mirror serving the real MNIST archives from loopback."""
    root = tmp_path / "mirror"
    root.mkdir()
    for name in RAW_NAMES:
        with gzip.open(root / f"{name}.gz", "wb", compresslevel=1) as out:
            out.write((real_data_dir / "MNIST" / "raw" / name).read_bytes())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_a_hanging_mirror_times_out_and_the_next_one_is_used(
    silent_server: str, mirror: str, real_data_dir: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "data" / "MNIST" / "raw"
    started = time.monotonic()
    download("mnist", raw, mirrors=[silent_server, mirror], timeout=1.0)
    assert time.monotonic() - started < 30
    for name in RAW_NAMES:
        assert (raw / name).read_bytes() == (real_data_dir / "MNIST" / "raw" / name).read_bytes()
    assert sorted(p.name for p in raw.iterdir()) == sorted(RAW_NAMES)


def test_only_hanging_mirrors_fail_within_the_timeout_with_one_message(silent_server: str, tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        download("mnist", raw, mirrors=[silent_server, silent_server], timeout=0.5)
    assert time.monotonic() - started < 5
    assert str(error.value).count(silent_server) == 2
    assert "timed out" in str(error.value)
    assert list(raw.iterdir()) == []


# --- checkpoints -----------------------------------------------------------------------------------------

SAVER = """
import sys, torch
from mnist_lightning.checkpoints import AtomicCheckpointIO
io = AtomicCheckpointIO()
checkpoint = {"state_dict": {"w": torch.randn(4_000_000)}, "step": 0}
print("ready", flush=True)
while True:
    checkpoint["step"] += 1
    io.save_checkpoint(checkpoint, sys.argv[1])
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
    try:
        for _ in range(6):
            child = subprocess.Popen(
                [sys.executable, "-c", SAVER, str(target)], stdout=subprocess.PIPE, env=env, cwd=REPO
            )
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.05, 0.6))
            child.send_signal(signal.SIGKILL)
            child.wait()
            if target.exists():
                assert torch.load(target, weights_only=True)["step"] >= 1
            for leftover in target.parent.glob(".*"):  # only a kill between naming and renaming leaves one
                assert torch.load(leftover, weights_only=True)["step"] >= 1, "never a half-written file"
            assert list(scratch.iterdir()) == [], "nothing is written outside the target folder"
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "step": 0}, target)
        assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"], "the next save removes leftovers"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fit_subprocess(root: Path, data_dir: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    command = [sys.executable, str(REPO / "train.py"), "fit", "--data.data_dir", str(data_dir), *FAST]
    command += ["--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir"]
    result = subprocess.run([*command, str(root), *extra], capture_output=True, text=True, env=env, cwd=root)
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_bitwise_identical_weights(synthetic_dir: Path, tmp_path: Path) -> None:
    every = ("--last_checkpoint.every_n_train_steps", "4")
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir()
    broken.mkdir()
    fit_subprocess(whole, synthetic_dir, *every)

    kill = ("--trainer.callbacks+=helpers.KillAtStep", "--trainer.callbacks.step", "14")
    killed = fit_subprocess(broken, synthetic_dir, *every, *kill, check=False)
    assert killed.returncode == -signal.SIGKILL
    last = broken / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 12  # mid-epoch: 10 steps per epoch

    resumed = fit_subprocess(broken, synthetic_dir, *every, "--ckpt_path", "last")
    assert "Restoring states from the checkpoint" in resumed.stderr + resumed.stdout
    assert [p.name for p in (broken / "lightning_logs").iterdir()] == ["version_0"], "the same run continues"
    whole_events = EventAccumulator(str(next((whole / "lightning_logs" / "version_0").glob("events.*"))))
    whole_events.Reload()  # train.py skips the interpreter's teardown: the event file must still be complete
    assert len(whole_events.Scalars("val/acc")) == 3
    assert "val/confusion_matrix" in whole_events.Tags()["images"]
    expected = torch.load(whole / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    actual = torch.load(last, weights_only=True)
    assert actual["global_step"] == expected["global_step"] == 30
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][name], tensor), name


def test_a_damaged_last_checkpoint_falls_back_to_the_newest_intact_one(trained_run: Path, run_cli, caplog) -> None:
    checkpoints = trained_run / "lightning_logs" / "version_0" / "checkpoints"
    (checkpoints / "last.ckpt").write_bytes((checkpoints / "last.ckpt").read_bytes()[:5000])
    (best,) = checkpoints.glob("epoch*.ckpt")
    assert run_cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "3") == 0
    assert f"--ckpt_path last: {best.relative_to(trained_run)}" in caplog.text
    assert "skipped" in caplog.text
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 2


def test_only_damaged_checkpoints_fail_loudly(trained_run: Path, run_cli, capsys) -> None:
    for path in (trained_run / "lightning_logs" / "version_0" / "checkpoints").glob("*.ckpt"):
        path.write_bytes(b"not a checkpoint")
    assert run_cli("fit", "--ckpt_path", "last") == 1
    assert "no intact checkpoint" in capsys.readouterr().err


@pytest.fixture
def trained_run(run_cli, synthetic_dir: Path, tmp_path: Path) -> Path:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, "--trainer.max_epochs", "2") == 0
    return tmp_path


def test_a_diverging_run_stops_at_once_and_writes_no_checkpoint(run_cli, synthetic_dir: Path, tmp_path, capsys):
    args = ("--data.data_dir", str(synthetic_dir), *FAST, "--model.optimizer", "SGD", "--model.lr", "1e37")
    assert run_cli("fit", *args) == 1
    err = capsys.readouterr().err
    assert "Training diverged at epoch 0, step 1" in err
    assert "smaller learning rate" in err
    assert list(tmp_path.rglob("*.ckpt")) == []


# --- crafted checkpoints ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ({"input_dim": 400_000_000}, "parameters, more than"),
        ({"_class_path": "subprocess.Popen"}, "only ['mnist_lightning.models.LitLogReg'"),
        ({"optimizer": {"class_path": "os.system", "init_args": {}}}, "is not a torch optimizer"),
        ({"_instantiator": "os.system"}, "instantiator 'os.system'"),
    ],
)
def test_crafted_hyperparameters_are_refused_before_anything_is_built(
    trained_run: Path, run_cli, capsys, tamper: dict, message: str
) -> None:
    (source,) = (trained_run / "lightning_logs" / "version_0" / "checkpoints").glob("epoch*.ckpt")
    checkpoint = torch.load(source, weights_only=True)
    checkpoint["hyper_parameters"].update(tamper)
    crafted = trained_run / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    assert run_cli("test", "--ckpt_path", str(crafted)) == 1
    assert message in capsys.readouterr().err


def test_a_checkpoint_carrying_code_is_refused_and_never_runs(trained_run: Path, run_cli, capsys) -> None:
    marker = trained_run / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    crafted = trained_run / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": Payload()}, crafted)
    assert run_cli("test", "--ckpt_path", str(crafted)) == 1
    assert "Refused to load" in capsys.readouterr().err
    assert not marker.exists()


# --- distributed -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_counts_every_validation_sample_once(synthetic_dir: Path, tmp_path: Path) -> None:
    count = tmp_path / "evaluated.txt"
    ddp = ("--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp")
    probe = ("--trainer.callbacks+=helpers.CountEvaluated", "--trainer.callbacks.out", str(count))
    result = fit_subprocess(tmp_path, synthetic_dir, *ddp, *probe, "--data.val_size", "201")
    assert count.read_text() == "201"  # 201 is odd: padding would have counted one sample twice
    assert result.stdout.count("Best checkpoint:") == 1
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"]
    last = torch.load(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3 * 5  # 999 training images, 2 ranks of 499, batches of 100

    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    predict = [sys.executable, str(REPO / "train.py"), "predict", "--ckpt_path", "last", *ddp]
    predict += ["--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"]
    result = subprocess.run(predict, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (tmp_path / "lightning_logs" / "version_1" / "predictions.csv").read_text().splitlines()
    assert [int(row.split(",")[0]) for row in rows[1:]] == list(range(300)), "both ranks' halves, merged in order"
