"""Extra folders in training: their images join the training split only, each drawn ``extra_repeats`` times per
epoch, and a resume warns when the folders changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from drawing import write_extras

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.data.extra import read_extra_images


def datamodule(data_dir: Path, **kwargs: object) -> MNISTDataModule:
    module = MNISTDataModule(data_dir=data_dir, val_size=200, batch_size=100, download=False, **kwargs)
    module.setup("fit")
    return module


def test_extras_join_the_training_split_only_each_repeated(synthetic_dir: Path, tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras")
    plain = datamodule(synthetic_dir)
    mixed = datamodule(synthetic_dir, extra_dirs=[extras], extra_repeats=3)
    train, with_extras = plain.split("train"), mixed.split("train")
    labels = read_extra_images([extras])[1]
    assert len(with_extras[1]) == len(train[1]) + 3 * 4
    assert torch.equal(with_extras[0][: len(train[1])], train[0])  # MNIST's rows unchanged, extras after them
    assert torch.equal(with_extras[1][len(train[1]) :], labels.repeat(3))
    for split in ("val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(mixed.split(split), plain.split(split), strict=True)), split
    assert (mixed.input_mean, mixed.input_std) == (plain.input_mean, plain.input_std)  # statistics of MNIST's rows


def test_each_extra_image_is_drawn_repeats_times_per_epoch(synthetic_dir: Path, tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras")
    images, _ = read_extra_images([extras])
    module = datamodule(synthetic_dir, extra_dirs=[extras], extra_repeats=5)
    seen = torch.cat([batch[0] for batch in module.train_dataloader()])
    wanted = images.float() / 255
    for image in wanted:
        assert int((seen == image).flatten(1).all(dim=1).sum()) == 5


def test_a_resume_warns_when_the_folders_changed(synthetic_dir: Path, tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras")
    saved = datamodule(synthetic_dir, extra_dirs=[extras]).state_dict()
    datamodule(synthetic_dir, extra_dirs=[extras]).load_state_dict(saved)  # unchanged: no warning
    (extras / "7" / "0.png").unlink()
    with pytest.warns(UserWarning, match=r"the folders' images changed since the checkpoint was saved"):
        datamodule(synthetic_dir, extra_dirs=[extras]).load_state_dict(saved)
