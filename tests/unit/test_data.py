"""The data on small synthetic files: IDX parsing, the split, loaders, augmentation, errors. (Damaged real files
and mirrors: ``tests/system/test_data_integrity.py``.)"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import idx_bytes, synthetic_split, write_dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Generator

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.data.augment import (
    AUGMENTATIONS,
    augment,
    random_affine,
    random_low_resolution,
    random_thickness,
)
from mnist_lightning.data.download import download
from mnist_lightning.data.idx import load_split, parse_idx
from mnist_lightning.data.loading import EpochBatchSampler, OrderedBatchSampler
from mnist_lightning.errors import ConfigError, DataError


def make(synthetic_dir: Path, **kwargs) -> MNISTDataModule:
    kwargs.setdefault("val_size", 200)
    dm = MNISTDataModule(data_dir=synthetic_dir, download=False, **kwargs)
    dm.setup()
    return dm


def all_batches(loader) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


@pytest.mark.parametrize(("val_size", "expected_val"), [(200, 200), (0.25, 300)])
def test_split_sizes(synthetic_dir: Path, val_size: int | float, expected_val: int) -> None:
    dm = make(synthetic_dir, val_size=val_size, batch_size=64, eval_batch_size=64)
    _, train_labels = all_batches(dm.train_dataloader())
    _, val_labels = all_batches(dm.val_dataloader())
    assert len(val_labels) == expected_val
    assert len(train_labels) == 1200 - expected_val


def test_same_seed_same_split_other_seed_other_split(synthetic_dir: Path) -> None:
    first, again, other = (make(synthetic_dir, seed=s).val_dataloader() for s in (7, 7, 8))
    images_first, _ = all_batches(first)
    assert torch.equal(images_first, all_batches(again)[0])
    assert not torch.equal(images_first, all_batches(other)[0])


def test_train_and_val_are_disjoint_and_cover_the_training_file(synthetic_dir: Path) -> None:
    dm = make(synthetic_dir, batch_size=100)
    train_images, _ = all_batches(dm.train_dataloader())
    val_images, _ = all_batches(dm.val_dataloader())
    originals, _ = load_split(synthetic_dir / "MNIST" / "raw", "mnist", "train")
    pixels = torch.cat([train_images, val_images]).mul(255).round().to(torch.uint8).flatten(1)
    assert sorted(map(bytes, pixels.numpy())) == sorted(map(bytes, originals.flatten(1).numpy()))


def test_test_set_is_untouched_and_in_file_order(synthetic_dir: Path) -> None:
    dm = make(synthetic_dir, eval_batch_size=128)
    images, labels = all_batches(dm.test_dataloader())
    expected_images, expected_labels = synthetic_split(300, seed=1)
    assert torch.equal(labels, expected_labels)
    assert torch.equal(images.mul(255).round().to(torch.uint8).squeeze(1), expected_images)


def test_evaluation_loaders_drop_nothing(synthetic_dir: Path) -> None:
    dm = make(synthetic_dir, eval_batch_size=64)  # 200 and 300 are not multiples of 64
    assert len(all_batches(dm.val_dataloader())[1]) == 200
    assert len(all_batches(dm.test_dataloader())[1]) == 300


def test_predict_loader_serves_test_images_with_their_indices(synthetic_dir: Path) -> None:
    dm = make(synthetic_dir, eval_batch_size=128)
    batches = list(dm.predict_dataloader())
    test_images, test_labels = all_batches(dm.test_dataloader())
    assert torch.equal(torch.cat([b[0] for b in batches]), test_images)
    assert torch.equal(torch.cat([b[1] for b in batches]), test_labels)
    assert torch.equal(torch.cat([b[2] for b in batches]), torch.arange(300))


def test_loaders_serve_pixels_and_the_statistics_are_the_training_splits(synthetic_dir: Path) -> None:
    dm = make(synthetic_dir, batch_size=2000)
    images, _ = all_batches(dm.train_dataloader())
    assert images.shape[1:] == (1, 28, 28)
    assert images.min() >= 0.0
    assert images.max() <= 1.0, "pixels in [0, 1], as ToTensor gives them: the model standardizes them itself"
    assert dm.input_mean == pytest.approx(images.mean().item(), abs=1e-6)
    assert dm.input_std == pytest.approx(images.std().item(), abs=1e-6)
    val_images, _ = all_batches(dm.val_dataloader())
    assert dm.input_mean != pytest.approx(torch.cat([images, val_images]).mean().item(), abs=1e-7)
    assert (make(synthetic_dir, normalize=False).input_mean, make(synthetic_dir, normalize=False).input_std) == (0, 1)


def test_training_order_is_a_function_of_seed_and_epoch() -> None:
    def order(epoch: int, seed: int = 3) -> list[list[int]]:
        sampler = EpochBatchSampler(50, batch_size=16, seed=seed)
        sampler.set_epoch(epoch)
        return [b.tolist() for b in sampler]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert order(0) != order(0, seed=4)
    assert sorted(i for batch in order(2) for i in batch) == list(range(50))


def test_sampler_resumes_mid_epoch_without_repeating_or_skipping() -> None:
    full = EpochBatchSampler(100, batch_size=16, seed=0)
    full.set_epoch(2)
    expected = [b.tolist() for b in full]
    resumed = EpochBatchSampler(100, batch_size=16, seed=0)
    resumed.resume_at(epoch=2, batches_done=3)
    resumed.set_epoch(2)
    assert [b.tolist() for b in resumed] == expected[3:]


def test_shards_cover_evaluation_sets_exactly_once() -> None:
    shards = [OrderedBatchSampler(10, batch_size=3, rank=r, world_size=3) for r in range(3)]
    seen = sorted(i for sampler in shards for batch in sampler for i in batch.tolist())
    assert seen == list(range(10))
    train = [EpochBatchSampler(10, 3, seed=0, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in train] == [1, 1, 1]
    assert all(len(next(iter(s))) == 3 for s in train)


def test_missing_files_without_download_name_the_folder_and_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        MNISTDataModule(data_dir=tmp_path, download=False)
    assert str(tmp_path / "MNIST" / "raw") in str(error.value)
    assert "--data.data_dir" in str(error.value)


def test_offline_download_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        download("mnist", tmp_path / "MNIST" / "raw", mirrors=["http://127.0.0.1:9/"], timeout=2)
    assert time.monotonic() - started < 10
    assert "--data.data_dir" in str(error.value)
    assert list(tmp_path.iterdir()) == [], "no partial files and no empty folders stay behind"


def test_val_size_larger_than_the_training_file_is_refused_at_setup(tmp_path: Path) -> None:
    dm = MNISTDataModule(data_dir=write_dataset(tmp_path), download=False, val_size=5000)
    with pytest.raises(ConfigError, match="val_size"):
        dm.setup()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_size": 70_000}, "val_size"),
        ({"val_size": 0}, "val_size"),
        ({"val_size": 1.0}, "val_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"dataset": "cifar"}, "dataset"),
    ],
)
def test_bad_arguments_are_refused_before_any_file_is_read(kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        MNISTDataModule(data_dir=tmp_path, **kwargs)


def test_data_lives_on_the_accelerator_and_batches_are_sliced_there(synthetic_dir: Path) -> None:
    """On a GPU the split is moved to the device once; batches never leave it (checked on 'meta')."""
    dm = make(synthetic_dir)
    device = torch.device("meta")
    dm.trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=device), global_rank=0, world_size=1, overfit_batches=0
    )
    loader = dm.train_dataloader()
    assert all(t.device == device for t in loader.dataset.tensors)
    images, labels = next(iter(loader))
    assert (images.device, labels.device) == (device, device)
    assert images.shape == (1000, 1, 28, 28)  # the default batch (1024) holds all 1,000 training images
    dm.hparams.num_workers = 2  # worker processes cannot share device tensors: the data stays on the CPU
    assert dm.val_dataloader().dataset.tensors[0].device.type == "cpu"


def fake_trainer(training: bool, batch_number: int = 5) -> SimpleNamespace:
    return SimpleNamespace(training=training, fit_loop=SimpleNamespace(total_batch_idx=batch_number))


def test_augmentation_moves_training_digits_only_and_is_seeded_per_batch(synthetic_dir: Path) -> None:
    dm = make(synthetic_dir, augment=True, batch_size=64)
    batch = next(iter(dm.train_dataloader()))
    dm.trainer = fake_trainer(training=True)
    moved, labels = dm.on_after_batch_transfer(batch, 0)
    again, _ = dm.on_after_batch_transfer(batch, 0)
    assert moved.shape == batch[0].shape
    assert torch.equal(labels, batch[1])
    assert torch.equal(moved, again), "the same batch number gets the same transform (exact resume)"
    changed = (moved - batch[0]).abs().flatten(1).amax(1) > 0.5
    assert changed.float().mean() > 0.9, "every digit gets its own random transform"
    blank = torch.zeros_like(batch[0])
    assert torch.equal(dm.on_after_batch_transfer((blank, labels), 0)[0], blank), (
        "pixels shifted in from outside the image are black background"
    )
    dm.trainer = fake_trainer(training=True, batch_number=6)
    assert not torch.equal(dm.on_after_batch_transfer(batch, 0)[0], moved)
    dm.trainer = fake_trainer(training=False)
    assert dm.on_after_batch_transfer(batch, 0)[0] is batch[0], "validation/test batches are never augmented"


@pytest.mark.parametrize("kind", AUGMENTATIONS)
def test_each_augmentation_changes_training_digits_stays_in_range_and_is_seeded(synthetic_dir: Path, kind) -> None:
    dm = make(synthetic_dir, augment=[kind], batch_size=64)
    batch = next(iter(dm.train_dataloader()))
    dm.trainer = fake_trainer(training=True)
    changed, _ = dm.on_after_batch_transfer(batch, 0)
    assert torch.equal(changed, dm.on_after_batch_transfer(batch, 0)[0])
    assert changed.min() >= 0
    assert changed.max() <= 1
    per_image = (changed - batch[0]).abs().flatten(1).amax(1)
    share = 0.2 if kind == "lowres" else 0.5  # lowres enlarges a scan of about a third of the digits
    assert (per_image > 0.05).float().mean() > share, f"{kind} leaves most digits as they were"
    dm.trainer = fake_trainer(training=False)
    assert dm.on_after_batch_transfer(batch, 0)[0] is batch[0]


def test_augment_true_is_affine_alone_and_unknown_kinds_are_refused(synthetic_dir: Path) -> None:
    assert make(synthetic_dir, augment=True).augmentations == ("affine",)
    assert make(synthetic_dir, augment=False).augmentations == ()
    batch = torch.rand(8, 1, 28, 28)
    assert torch.equal(
        augment(batch, Generator().manual_seed(1), ["affine"]), random_affine(batch, Generator().manual_seed(1))
    )
    with pytest.raises(ConfigError, match="augment must be"):
        make(synthetic_dir, augment=["sharpen"])


def test_thickness_thickens_and_thins_strokes() -> None:
    stroke = torch.zeros(64, 1, 28, 28)
    stroke[:, :, 4:24, 12:15] = 1.0
    out = random_thickness(stroke, Generator().manual_seed(0))
    ink = out.flatten(1).sum(1)
    assert (ink > 60 * 1.2).any()
    assert (ink < 60 * 0.8).any()


def test_lowres_keeps_a_few_pixels_of_detail_at_full_ink() -> None:
    stroke = torch.zeros(32, 1, 28, 28)
    stroke[:, :, 4:24, 13:15] = 1.0
    out = random_low_resolution(stroke, Generator().manual_seed(0), share=1.0)
    assert torch.allclose(out.flatten(1).amax(1), torch.ones(32))  # stretched back to full ink, as preprocessing does
    assert ((out > 0.05) & (out < 0.95)).flatten(1).sum(1).min() > 20  # a sharp 2 px stroke is now a soft one
    assert float((out - stroke).abs().sum()) > 0


# --- file integrity ----------------------------------------------------------------------------------


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
