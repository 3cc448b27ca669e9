"""The GPU path: training on a CUDA device in bf16-mixed with the data on the device, checkpoints that load
on the CPU, inference and the divergence guard there.

The ``gpu`` tests run only when ``-m`` names ``gpu`` (``pytest -m gpu``, which ``bench/gpu.sh`` runs); every
other selection deselects them (tests/conftest.py). Without a CUDA device they fail, never skip.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from conftest import names_gpu
from helpers import FAST, best_checkpoint, quiet_trainer

from mnist_lightning import LitCNN, MNISTDataModule, load_model
from mnist_lightning.callbacks import DivergenceGuard
from mnist_lightning.inference import predict_digits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gpu as gpu_check

REPO = Path(__file__).resolve().parents[1]
ON_GPU = ("--trainer.accelerator", "gpu", "--trainer.precision", "bf16-mixed")


@pytest.fixture
def cuda() -> torch.device:
    """The CUDA device; its absence is a failure: this lane is chosen with ``-m gpu``, on a machine with one."""
    assert torch.cuda.is_available(), f"the gpu tests (-m gpu) need a CUDA device; torch {torch.__version__} sees none"
    return torch.device("cuda", 0)


class RecordDevices(L.Callback):
    """Where the training data, the batches and the layers' outputs are, and in which dtype."""

    def __init__(self) -> None:
        self.seen: dict[str, set[Any]] = {"split": set(), "batch": set(), "output": set()}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen["split"] |= {t.device.type for t in trainer.train_dataloader.dataset.tensors}
        pl_module.net.register_forward_hook(lambda module, inputs, output: self.seen["output"].add(output.dtype))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, *args: Any) -> None:
        self.seen["batch"] |= {t.device.type for t in batch}


@pytest.mark.gpu
def test_fit_on_the_gpu_trains_in_bf16_on_data_kept_on_the_device(cuda, synthetic_dir: Path, tmp_path: Path) -> None:
    model = LitCNN(channels=[8, 16], hidden_dim=32)
    record = RecordDevices()
    on_gpu = {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"}
    trainer = quiet_trainer(tmp_path, **on_gpu, max_epochs=2, callbacks=[record, DivergenceGuard()])
    trainer.fit(model, MNISTDataModule(synthetic_dir, val_size=200, batch_size=100, download=False))
    assert record.seen == {"split": {"cuda"}, "batch": {"cuda"}, "output": {torch.bfloat16}}
    assert next(model.parameters()).dtype == torch.float32, "bf16-mixed keeps float32 weights"
    assert trainer.callback_metrics["val/acc"] > 0.3, "it learned (chance is 0.1)"
    assert trainer.callback_metrics["train/acc"] > 0.2


@pytest.mark.gpu
def test_a_checkpoint_trained_on_the_gpu_loads_and_predicts_on_the_cpu(
    cuda, run_cli, synthetic_dir: Path, tmp_path: Path
) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, *ON_GPU) == 0
    path = best_checkpoint(tmp_path)
    on_cpu, on_gpu = load_model(path), load_model(path, map_location=cuda)
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}
    images, labels = MNISTDataModule(synthetic_dir, download=False).split("test")
    cpu_answer, gpu_answer = predict_digits(on_cpu, images), predict_digits(on_gpu, images)
    assert (cpu_answer.labels == labels).float().mean() > 0.5
    assert torch.allclose(cpu_answer.probabilities, gpu_answer.probabilities, atol=1e-3)
    assert run_cli("test", "--ckpt_path", str(path), "--data.data_dir", str(synthetic_dir), *ON_GPU) == 0


@pytest.mark.gpu
def test_divergence_on_the_gpu_stops_in_one_line_and_saves_nothing(
    cuda, run_cli, synthetic_dir: Path, tmp_path: Path, capsys
) -> None:
    huge = ("--model.optimizer", "SGD", "--model.lr", "1e37")
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, *ON_GPU, *huge) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "Training diverged" in err[0]
    assert "the gradients or the weights became NaN or infinite at step" in err[0], "read on the device, deferred"
    assert list(tmp_path.rglob("*.ckpt")) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("expression", "chosen"),
    [
        ("", False),
        ("not slow", False),
        ("not unit", False),
        ("slow or not slow", False),
        ("gpus", False),
        ("gpu", True),
        ("gpu or not gpu", True),
        ("not gpu", True),
        ("slow and gpu", True),
    ],
)
def test_only_an_expression_that_names_gpu_keeps_the_gpu_tests(expression: str, chosen: bool) -> None:
    assert names_gpu(expression) is chosen


@pytest.mark.slow
def test_the_gpu_lane_is_chosen_by_name_and_fails_without_a_gpu() -> None:
    """Deselected (and counted so) by default; chosen with ``-m gpu`` on a machine without a GPU, it fails."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    pytest_ = [sys.executable, "-m", "pytest", "tests/test_gpu.py", "-p", "no:cacheprovider", "-q"]
    marked = {name: getattr(test, "pytestmark", ()) for name, test in globals().items() if name.startswith("test_")}
    gpu_tests = {name for name, marks in marked.items() if any(mark.name == "gpu" for mark in marks)}
    assert len(gpu_tests) == 3
    listed = subprocess.run([*pytest_, "--collect-only"], cwd=REPO, env=env, capture_output=True).stdout.decode()
    assert f"({len(gpu_tests)} deselected)" in listed, "the default lane counts them as deselected"
    assert not any(name in listed for name in gpu_tests), listed
    chosen = subprocess.run([*pytest_, "-m", "gpu", "-x"], cwd=REPO, env=env, capture_output=True)
    assert chosen.returncode == 1
    assert b"need a CUDA device" in chosen.stdout
    assert b"skipped" not in chosen.stdout


@pytest.mark.slow
def test_the_gpu_check_falls_back_to_a_short_cpu_run_without_a_gpu(real_data_dir: Path, tmp_path: Path) -> None:
    """bench/gpu.sh on a machine without a GPU: says so, runs no GPU test, writes no GPU figures."""
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark results\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    command = ["bash", "bench/gpu.sh", "--data-dir", str(real_data_dir), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("NO GPU: torch sees no CUDA device here. The GPU-marked tests need one")
    text = out.read_text()
    assert "## GPU check: CPU smoke run (no GPU on this machine; these are not GPU figures)" in text
    assert "on a GPU (bench/gpu.sh)" not in text
    assert "GPU-marked tests (`pytest -m gpu`): not run (no GPU)." in text
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    for config in ("default run", "cnn.yaml"):
        assert re.fullmatch(r"\| \S+( \S+)? \| no \| 1 \| [\d.]+ s \| [\d.]+ s \| [\d.]+% \|  \|", rows[config])
    fast = "cnn_fast.yaml"
    if (REPO / "configs" / fast).is_file():
        assert re.fullmatch(r"\| cnn_fast.yaml \| no \| 1 \| [\d.]+ s \| [\d.]+ s \| [\d.]+% \|  \|", rows[fast])
    else:
        assert rows[fast].endswith("| configs/cnn_fast.yaml is missing: not run |")


@pytest.mark.unit
def test_compiling_the_network_keeps_the_checkpoint_keys() -> None:
    model = LitCNN(channels=[4, 8], hidden_dim=16)
    keys = list(model.state_dict())
    gpu_check.CompileNet().setup(None, model, "fit")
    assert list(model.state_dict()) == keys
