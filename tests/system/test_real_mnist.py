"""Training on the real MNIST files in ../shared/data (CI has them: these tests never skip; marked slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.data.idx import load_split


def test_one_epoch_reaches_90_percent(run_cli, real_data_dir: Path, tmp_path: Path) -> None:
    args = ("--data.data_dir", str(real_data_dir), "--trainer.max_epochs", "1", "--data.batch_size", "256")
    assert run_cli("fit", *args) == 0
    (best,) = (tmp_path / "lightning_logs" / "version_0" / "checkpoints").glob("epoch*.ckpt")
    checkpoint = torch.load(best, weights_only=True)
    (score,) = [s["best_model_score"] for s in checkpoint["callbacks"].values() if s.get("monitor") == "val/acc"]
    assert score >= 0.90


def test_real_files_verify_and_split_50k_10k(real_data_dir: Path) -> None:
    dm = MNISTDataModule(data_dir=real_data_dir, download=False)
    dm.setup()
    assert [len(dm.split(s)[1]) for s in ("train", "val", "test")] == [50_000, 10_000, 10_000]
    assert dm.input_mean == pytest.approx(0.1307, abs=5e-4)  # the published MNIST statistics
    assert dm.input_std == pytest.approx(0.3081, abs=5e-4)
    test_images, _ = load_split(real_data_dir / "MNIST" / "raw", "mnist", "test")
    assert torch.equal(dm.split("test")[0], test_images.unsqueeze(1).float() / 255)
