"""train.py and the checkpoint IO as processes: killed saves, signals and kills mid-run resumed bitwise, the
same command twice, DDP on two CPU processes, a checkpoint loaded by a plain script, the fast exit."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from drawing import write_extras
from helpers import FAST, REPO, best_checkpoint, run_folder
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_lightning.checkpoint import AtomicCheckpointIO


def fit_command(root: Path, data_dir: Path, *extra: str) -> list[str]:
    """``python train.py fit`` on ``data_dir``, three short epochs, run folders under ``root``."""
    command = [sys.executable, str(REPO / "train.py"), "fit", "--data.data_dir", str(data_dir), *FAST]
    command += ["--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir"]
    return [*command, str(root), *extra]


def fit_subprocesses(runs: list[tuple], check: bool = True) -> list[subprocess.CompletedProcess]:
    """``fit_command(*run)`` for every run, all started at once in their own ``root``; waits for them all."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    commands = [fit_command(*run) for run in runs]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=run[0])
        for command, run in zip(commands, runs, strict=True)
    ]
    try:
        outputs = [process.communicate(timeout=300) for process in processes]  # a hang fails
    finally:
        for process in processes:
            process.kill()
            process.wait()
    results = [
        subprocess.CompletedProcess(command, process.returncode, out, err)
        for command, process, (out, err) in zip(commands, processes, outputs, strict=True)
    ]
    for result in results if check else ():
        assert result.returncode == 0, result.stderr[-2000:]
    return results


def fit_subprocess(root: Path, data_dir: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    (result,) = fit_subprocesses([(root, data_dir, *extra)], check=check)
    return result


def last_state(root: Path, version: int = 0) -> dict:
    return torch.load(run_folder(root, version) / "checkpoints" / "last.ckpt", weights_only=True)


def callback_state(checkpoint: dict, prefix: str) -> dict:
    (state,) = (value for key, value in checkpoint["callbacks"].items() if key.startswith(prefix))
    return state


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


def test_checkpoint_loads_in_a_plain_script_and_takes_pixels(shared_run: Path, synthetic_dir: Path) -> None:
    """``LitLogReg.load_from_checkpoint`` alone gives the model that scored val/acc: it standardizes by itself."""
    script = (
        "import sys, torch\n"
        "from mnist_lightning import LitLogReg, MNISTDataModule\n"
        "model = LitLogReg.load_from_checkpoint(sys.argv[1], map_location='cpu', weights_only=True).eval()\n"
        "data = MNISTDataModule(sys.argv[2], download=False, val_size=200)\n"
        "images, labels = data.split('val')\n"
        "accuracy = (model(images).argmax(1) == labels).float().mean().item()\n"
        "print(type(model).__name__, model.hparams.lr, round(model.input_std.item(), 4), accuracy)\n"
    )
    best = best_checkpoint(shared_run)
    result = subprocess.run(
        [sys.executable, "-c", script, str(best), str(synthetic_dir)], capture_output=True, text=True, check=True
    )
    name, lr, std, accuracy = result.stdout.split()
    assert (name, lr) == ("LitLogReg", "0.05")
    assert float(std) != 1.0, "the training statistics came with the checkpoint"
    assert float(accuracy) == pytest.approx(float(best.stem.split("val_acc")[1]), abs=1e-4)


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
    resumed = fit_subprocess(tmp_path, synthetic_dir, *ddp, *probe, "--ckpt_path", "last")  # rank 1 joins the run
    assert "Restored all states" in resumed.stderr
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"]

    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    predict = [sys.executable, str(REPO / "train.py"), "predict", "--ckpt_path", "last", *ddp]
    predict += ["--data.data_dir", str(synthetic_dir)]  # outside the current folder: the user gives it
    predict += ["--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"]
    result = subprocess.run(predict, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (tmp_path / "lightning_logs" / "version_1" / "predictions.csv").read_text().splitlines()
    assert [int(row.split(",")[0]) for row in rows[1:]] == list(range(300)), "both ranks' halves, merged in order"


CONFIGS = {
    "default": (),
    "mlp_dropout_augment_workers": (
        *("--model", "LitMLP", "--model.dropout", "0.3", "--data.augment", "true", "--data.num_workers", "2"),
    ),
    "early_stopping_batch_size_64": (
        "--trainer.callbacks+=EarlyStopping",
        "--trainer.callbacks.monitor=val/acc",
        "--trainer.callbacks.mode=max",
        "--trainer.callbacks.min_delta=0.5",
        "--trainer.callbacks.patience=2",
        "--trainer.max_epochs=5",
        *("--data.batch_size", "64"),
    ),
}
"""Each feature a resume must restore is in one config (its run is made once); each signal stops one case."""


CASES = [
    ("default", signal.SIGKILL),
    ("default", signal.SIGTERM),
    ("mlp_dropout_augment_workers", signal.SIGINT),
    ("early_stopping_batch_size_64", signal.SIGKILL),
]


EVERY = ("--last_checkpoint.every_n_train_steps", "4")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> dict[str, Path]:
    """One uninterrupted run per config, the three started at once (each process uses one core)."""
    roots = {name: tmp_path_factory.mktemp(f"whole_{name}") for name in CONFIGS}
    fit_subprocesses([(root, synthetic_dir, *EVERY, *CONFIGS[name]) for name, root in roots.items()])
    return roots


@pytest.mark.parametrize(("name", "signum"), CASES, ids=[f"{n}-{s.name}" for n, s in CASES])
def test_a_stopped_run_resumes_bitwise_equal(
    uninterrupted: dict[str, Path], synthetic_dir: Path, tmp_path: Path, name: str, signum: signal.Signals
) -> None:
    whole = uninterrupted[name]
    expected = last_state(whole)
    step = random.Random(f"{name}-{signum.name}").randint(11, expected["global_step"] - 2)  # reproducibly random
    stop = ("--trainer.callbacks+=helpers.SignalAtStep", f"--trainer.callbacks.step={step}")
    stop += (f"--trainer.callbacks.signum={int(signum)}",)
    stopped = fit_subprocess(tmp_path, synthetic_dir, *EVERY, *CONFIGS[name], *stop, check=False)
    if signum == signal.SIGKILL:
        assert stopped.returncode == -signal.SIGKILL
        assert step % 4 != 0, "killed mid-way between two saves"
        assert last_state(tmp_path)["global_step"] == step - step % 4
    else:
        assert stopped.returncode == 128 + signum, stopped.stderr[-2000:]
        assert f"stopped by {signum.name} at step {step}" in stopped.stderr
        assert last_state(tmp_path)["global_step"] == step, "last.ckpt saved where it stopped"
    # the same options again: a resume takes the run's callbacks from the command line, never from its config.yaml
    resumed = fit_subprocess(tmp_path, synthetic_dir, *EVERY, *CONFIGS[name], *stop, "--ckpt_path", "last")
    assert "Restoring states from the checkpoint" in resumed.stderr + resumed.stdout
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"], "the same run continues"
    actual = last_state(tmp_path)
    assert (actual["epoch"], actual["global_step"]) == (expected["epoch"], expected["global_step"])
    for key, tensor in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][key], tensor), key
    names = sorted(p.name for p in (run_folder(tmp_path) / "checkpoints").glob("*.ckpt"))
    assert names == sorted(p.name for p in (run_folder(whole) / "checkpoints").glob("*.ckpt")), "no stray files"
    for prefix in ("ModelCheckpoint", "HParamsMetrics", "EarlyStopping"):
        if any(key.startswith(prefix) for key in expected["callbacks"]):
            want, got = callback_state(expected, prefix), callback_state(actual, prefix)
            for key in ("best_model_path", "best", "wait_count", "stopped_epoch"):
                if key in want:
                    assert str(got[key]).replace(str(tmp_path), "") == str(want[key]).replace(str(whole), ""), key


def test_train_py_leaves_a_complete_event_file(uninterrupted: dict[str, Path]) -> None:
    """train.py skips the interpreter's teardown: the TensorBoard event file must still hold every epoch."""
    events = EventAccumulator(str(next(run_folder(uninterrupted["default"]).glob("events.*"))))
    events.Reload()
    assert len(events.Scalars("val/acc")) == 3
    assert "val/confusion_matrix" in events.Tags()["images"]


def test_the_same_command_twice_gives_the_same_weights(
    uninterrupted: dict[str, Path], synthetic_dir: Path, tmp_path: Path
) -> None:
    """Augmented batches do not depend on the process, nor on how many loader workers draw them."""
    config = CONFIGS["mlp_dropout_augment_workers"]
    fit_subprocess(tmp_path, synthetic_dir, *EVERY, *config, "--data.num_workers", "0")
    again = last_state(tmp_path)
    first = last_state(uninterrupted["mlp_dropout_augment_workers"])
    for key, tensor in first["state_dict"].items():
        assert torch.equal(again["state_dict"][key], tensor), key


def test_a_run_with_extras_killed_mid_epoch_resumes_bitwise_identical(synthetic_dir: Path, tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras", per_class=3)
    options = (
        "--data.extra_dirs",
        f"[{extras}]",
        "--data.extra_repeats",
        "30",
        "--last_checkpoint.every_n_train_steps",
        "4",
    )
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir()
    broken.mkdir()
    fit_subprocess(whole, synthetic_dir, *options)
    kill = ("--trainer.callbacks+=helpers.KillAtStep", "--trainer.callbacks.step", "18")  # last.ckpt: step 16
    assert fit_subprocess(broken, synthetic_dir, *options, *kill, check=False).returncode == -signal.SIGKILL
    fit_subprocess(broken, synthetic_dir, *options, *kill, "--ckpt_path", "last")
    expected = torch.load(run_folder(whole) / "checkpoints" / "last.ckpt", weights_only=True)
    actual = torch.load(run_folder(broken) / "checkpoints" / "last.ckpt", weights_only=True)
    assert actual["global_step"] == expected["global_step"] == 3 * 12  # (1,000 + 180) / 100 batches per epoch
    for key, tensor in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][key], tensor), key


def test_atexit_runs_its_handlers_before_a_fast_exit() -> None:
    """``atexit._run_exitfuncs()`` then ``os._exit`` (mnist_lightning/cli/exit.py ``exit_now``).

    ``train.py`` skips the interpreter's teardown (freeing torch's and Lightning's modules takes 1.5-2 s) but
    must still run the atexit handlers (loggers' and multiprocessing's); no public call runs them without the
    teardown. Checked in a child process: running them here would end pytest's own handlers.
    """
    script = "import atexit, os; atexit.register(print, 'handler ran'); atexit._run_exitfuncs(); os._exit(3)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (3, "handler ran\n"), result.stderr
