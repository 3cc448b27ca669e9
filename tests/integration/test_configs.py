"""Every YAML in configs/ runs end to end (a few batches on synthetic data) and means what it says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from helpers import REPO, write_dataset

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def all_datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("siblings")
    for folder in ("MNIST", "FashionMNIST", "KMNIST"):
        write_dataset(root, folder)
    return root


def test_there_are_configs() -> None:
    assert len(CONFIGS) >= 8


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_config_trains_end_to_end(config: Path, run_cli, all_datasets: Path, tmp_path: Path) -> None:
    args = ("--data.data_dir", str(all_datasets), "--data.val_size", "200", "--trainer.max_epochs", "2")
    assert run_cli("fit", "--config", str(config), *args, "--trainer.limit_train_batches", "4") == 0
    (last,) = tmp_path.glob("lightning_logs/version_0/checkpoints/last.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    settings = yaml.safe_load(config.read_text())
    model = settings.get("model", {})
    expected_class = model.get("class_path", "mnist_lightning.LitLogReg")
    assert checkpoint["hyper_parameters"]["_class_path"] == expected_class
    hparams = checkpoint["hyper_parameters"]
    for key, value in model.get("init_args", {}).items():
        if isinstance(value, dict):
            assert hparams[key]["class_path"] == value["class_path"], key
        elif key != "lr" or "LearningRateFinder" not in config.read_text():
            assert hparams[key] == value, key
    for key, value in settings.get("data", {}).items():
        if key not in ("data_dir", "val_size"):  # overridden above
            assert checkpoint["datamodule_hyper_parameters"][key] == value, key


def test_the_lr_finder_config_replaces_the_learning_rate(run_cli, all_datasets: Path, tmp_path: Path) -> None:
    config = next(c for c in CONFIGS if c.stem == "lr_find")
    args = ("--data.data_dir", str(all_datasets), "--data.val_size", "200", "--data.batch_size", "50")
    assert run_cli("fit", "--config", str(config), *args, "--trainer.max_epochs", "6") == 0  # room for 100 steps
    (last,) = tmp_path.glob("lightning_logs/version_0/checkpoints/last.ckpt")
    lr = torch.load(last, weights_only=True)["hyper_parameters"]["lr"]
    assert lr != 0.02
    assert 1e-5 <= lr <= 1.0
