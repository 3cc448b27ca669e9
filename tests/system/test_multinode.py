"""Beyond one machine: two "nodes" of one process each, started by torchrun on loopback (CPU, gloo).

What a run promises on one machine holds there: every rank builds the same split, every validation sample
is counted once, rank 0 alone writes one run folder with its checkpoints, and a run killed on both nodes
resumes to weights bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, cli_runner, free_port, run_folder

from mnist_lightning import MNISTDataModule, load_model

NODES = ("--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp")
NODES += ("--trainer.accelerator", "cpu")
RUN = (
    *("--data.val_size", "201", "--data.eval_batch_size", "100", "--data.batch_size", "50", "--model.lr", "0.0003"),
    *("--trainer.max_epochs", "2", "--last_checkpoint.every_n_train_steps", "4"),
    *("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"),
)
"""999 training images: 499 a rank, 10 steps an epoch. 201 validation images: rank 0 validates 101 (in two
batches), rank 1 100 (in one), so padding would count a sample twice and unequal batch counts must not hang."""
TIMEOUT = 150
"""Seconds for one two-node command (about 30 s on two shared cores): a hang fails, it does not block the suite."""
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to clean up")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in sessions of their own)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def two_nodes(root: Path, *args: str) -> tuple[list[int], list[str]]:
    """``torchrun --nnodes 2 --node_rank N ... train.py ARGS`` for both nodes at once, in ``root``, as two shells
    would start it; returns their exit codes and output. Whatever still runs after ``TIMEOUT`` is killed."""
    root.mkdir(exist_ok=True)
    port = str(free_port())
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), "GLOO_SOCKET_IFNAME": "lo"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
    launcher += ["--master_addr", "127.0.0.1", "--master_port", port]
    logs = [root.parent / f"{root.name}-node{rank}.log" for rank in (0, 1)]
    nodes = []
    for rank, log in enumerate(logs):
        command = [*launcher, "--node_rank", str(rank), str(REPO / "train.py"), *args]
        with log.open("w") as out:
            nodes.append(subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + TIMEOUT
    try:
        for node in nodes:
            node.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for node in nodes:
            if node.poll() is None:
                for pid in [*descendants(node.pid), node.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                node.wait()
    outputs = [log.read_text() for log in logs]
    hung = [rank for rank, node in enumerate(nodes) if node.returncode == -signal.SIGKILL]
    assert not hung, f"node(s) {hung} still ran after {TIMEOUT} s:\n" + "\n".join(o[-3000:] for o in outputs)
    return [node.returncode for node in nodes], outputs


def checkpoint_names(root: Path) -> list[str]:
    return sorted(p.name for p in (run_folder(root) / "checkpoints").iterdir())


def model_checkpoint_state(checkpoint: dict) -> dict:
    (state,) = (value for key, value in checkpoint["callbacks"].items() if key.startswith("ModelCheckpoint"))
    return state


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> Path:
    """One uninterrupted two-node fit; the ranks record their split and count validation samples in it."""
    root = tmp_path_factory.mktemp("two_nodes") / "whole"
    probes = ("--trainer.callbacks+=helpers.RecordSplit", f"--trainer.callbacks.out={root.parent}")
    probes += ("--trainer.callbacks+=helpers.CountEvaluated", f"--trainer.callbacks.out={root.parent / 'count.txt'}")
    codes, outputs = two_nodes(root, "fit", "--data.data_dir", str(synthetic_dir), *NODES, *RUN, *probes)
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outputs)
    return root


def test_two_nodes_share_the_split_count_each_validation_sample_once_and_write_one_run(
    whole: Path, synthetic_dir: Path
) -> None:
    ranks = [json.loads((whole.parent / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0]["split"] == ranks[1]["split"], "both nodes built the same train/validation split"
    trained = [set(rank["trained"]) for rank in ranks]
    assert len(trained[0]) == len(trained[1]) == 499, "999 training images: 499 a rank"
    assert not trained[0] & trained[1], "the ranks train on disjoint halves"

    assert (whole.parent / "count.txt").read_text() == "201", "every validation sample counted once"
    last = torch.load(run_folder(whole) / "checkpoints" / "last.ckpt", weights_only=True)
    images, labels = MNISTDataModule(data_dir=str(synthetic_dir), val_size=201).split("val")
    with torch.no_grad():
        correct = int((load_model(run_folder(whole) / "checkpoints" / "last.ckpt")(images).argmax(1) == labels).sum())
    score = float(model_checkpoint_state(last)["current_score"])
    assert 0.3 < score < 1.0, "an accuracy that can tell a miscount"
    assert round(score * 201) == correct, "the two nodes' val/acc is the one process accuracy of the same weights"

    assert [p.name for p in (whole / "lightning_logs").iterdir()] == ["version_0"], "one run folder"
    assert checkpoint_names(whole) == sorted([Path(model_checkpoint_state(last)["best_model_path"]).name, "last.ckpt"])
    assert last["global_step"] == 2 * 10
    assert (whole.parent / "whole-node0.log").read_text().count("Best checkpoint:") == 1
    assert "Best checkpoint:" not in (whole.parent / "whole-node1.log").read_text()


def test_two_nodes_killed_resume_bitwise_equal_and_test_on_one_machine(
    whole: Path, synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken"
    kill = ("--trainer.callbacks+=helpers.KillAtStep", "--trainer.callbacks.step", "14")
    fit = ("fit", "--data.data_dir", str(synthetic_dir), *NODES)
    codes, outputs = two_nodes(broken, *fit, *RUN, "--trainer.logger", "false", *kill)
    assert all(code != 0 for code in codes), "both nodes die at step 14"
    assert [p.name for p in (broken / "lightning_logs").iterdir()] == ["version_0"], "no folder of rank 1's own"
    last = run_folder(broken) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 12, "mid-epoch: 10 steps an epoch"

    settings = str(run_folder(broken) / "config.yaml")  # the run's own settings, named on the command line
    codes, outputs = two_nodes(broken, "fit", "--config", settings, "--ckpt_path", "last")
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert "Restored all states from the checkpoint" in outputs[0]
    assert [p.name for p in (broken / "lightning_logs").iterdir()] == ["version_0"], "the same run continues"
    expected = torch.load(run_folder(whole) / "checkpoints" / "last.ckpt", weights_only=True)
    actual = torch.load(last, weights_only=True)
    assert (actual["epoch"], actual["global_step"]) == (expected["epoch"], expected["global_step"])
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][name], tensor), name
    assert checkpoint_names(broken) == checkpoint_names(whole), "the same best and last checkpoints"

    test = ("test", "--ckpt_path", "best", "--data.data_dir", str(synthetic_dir))
    assert cli_runner(monkeypatch, broken)(*test) == 0, "tested on one process"
