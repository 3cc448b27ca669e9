"""What a Lightning user expects to just work: a logger by name, ReduceLROnPlateau, the checkpoint switches and
overfit_batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import FAST, quiet_trainer

from mnist_lightning import LitLogReg, MNISTDataModule


def test_csv_logger_by_name_writes_beside_the_default_runs(run_cli, synthetic_dir: Path, tmp_path: Path) -> None:
    assert run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, "--trainer.logger", "CSVLogger") == 0
    assert (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text().startswith("epoch")
    assert (tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_reduce_lr_on_plateau_steps_per_epoch_on_the_validation_loss(synthetic_dir: Path, tmp_path: Path) -> None:
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
