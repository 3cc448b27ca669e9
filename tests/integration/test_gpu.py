"""The GPU path: training on a CUDA device in bf16-mixed with the data on the device, checkpoints that load
on the CPU, inference and the divergence guard there.

The ``gpu`` tests run only when ``-m`` names ``gpu`` (``pytest -m gpu``, which ``bench/gpu.sh`` runs); every
other selection deselects them (tests/conftest.py). Without a CUDA device they fail, never skip
(tests/system/test_gpu_check.py checks both, and the GPU check's fallback without a GPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from helpers import FAST, best_checkpoint, quiet_trainer

from mnist_lightning import LitCNN, MNISTDataModule, load_model
from mnist_lightning.callbacks import DivergenceGuard
from mnist_lightning.inference import predict_digits

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
