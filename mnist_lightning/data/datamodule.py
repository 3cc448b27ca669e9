"""``MNISTDataModule``: verified files, a seeded split, and in-memory loaders of ``[0, 1]`` pixels.

The split's images are decoded once and kept as the files' uint8 bytes; every batch is one ``index_select``
of them, converted to float pixels exactly as ``transforms.ToTensor()`` converts (``/ 255``). Keeping bytes
makes the split 4x smaller, start-up shorter (no float copy of it) and each gather move a quarter of the bytes,
for the same values. The model standardizes its own input (its ``input_mean``/``input_std`` buffers);
the statistics of the training split are computed here, from a histogram of its 256 byte values, and
handed to the model before training (see ``LitClassifier.setup``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch.utils.data import DataLoader

from mnist_lightning.data.augment import AUGMENTATIONS, Augmentation, augment
from mnist_lightning.data.download import download
from mnist_lightning.data.extra import digest, distinct_folders, read_extra_images
from mnist_lightning.data.idx import (
    ORIGINAL_COUNTS,
    TORCHVISION_CLASSES,
    DatasetName,
    load_split,
    missing_hint,
    raw_files_present,
    raw_folder,
)
from mnist_lightning.data.loading import EpochBatchSampler, OrderedBatchSampler, TensorBatches
from mnist_lightning.data.negatives import NEGATIVE_LABEL, letter_fonts, negative_images
from mnist_lightning.errors import ConfigError, DataError

EXTRA_REPEATS = 50
"""Each extra image is drawn this often per epoch by default: 30 corrections then make 1,500 of 51,500 training
images, about 4 in each batch of 128, enough for a 50-step fine-tune to learn them (docs/data.md)."""
MAX_EXTRA_REPEATS = 10_000
MAX_NEGATIVES = 60_000
MIN_USEFUL_VAL = 100
"""Fewer validation images than this make val/acc too coarse to choose a best checkpoint."""


class MNISTDataModule(L.LightningDataModule):
    """MNIST (or Fashion-MNIST, KMNIST) from verified IDX files, split with a seeded generator.

    The official 60k training set is split into train/validation (``val_size`` images, an int or a
    fraction); the official 10k test set is never touched by training and serves ``test`` and ``predict``.

    Args:
        data_dir: Folder holding ``<Dataset>/raw/*-ubyte`` (torchvision's layout), or where to download them.
        dataset: ``mnist``, ``fashion_mnist`` or ``kmnist``: the same format, split and loaders.
        val_size: Validation images taken from the 60k training set: a count or a fraction.
        batch_size: Training batch size.
        eval_batch_size: Batch size for validation, test and predict (no sample is ever dropped).
        num_workers: Worker processes per loader; 0 (fastest here: batches are tensor slices) keeps the
            data on the accelerator.
        seed: Seeds the split and the per-epoch shuffling (and augmentation): same seed, same batches.
        download: Download missing files (needs internet); otherwise a missing file is an error.
        normalize: Have the model standardize its input with the mean and std of the training split
            (``false``: the model sees pixels in [0, 1] as they are, like the classic tutorial).
        augment: Augmentation of training batches (never of evaluation ones): ``true`` for random small
            rotations, shifts and zooms (``[affine]``), or a list of kinds from ``affine``, ``elastic``,
            ``thickness``, ``blur``, ``contrast`` (see ``mnist_lightning.data.augment``).
        download_timeout: Seconds a download may wait for the server before trying the next mirror.
        extra_dirs: Folders of extra labelled images (``DIR/7/x.png``: torchvision's ImageFolder layout, any
            image size, preprocessed as ``predict_images`` does) mixed into the training split only: corrections
            collected by the server (``--collect``), a handwriting style to teach.
        extra_repeats: How many times each extra image is drawn per epoch: a few dozen images weigh as much as a
            few thousand would (see docs/data.md).
        negatives: How many pictures that are not digits (letters, scribbles, noise: ``data.negatives``) join the
            training split, labelled -1, for a model to learn to say "does not look like a digit" (set the model's
            ``outlier_weight`` too). Drawn once per run from ``seed``; never in validation or test.
    """

    def __init__(
        self,
        data_dir: str | Path = "data",
        dataset: DatasetName = "mnist",
        val_size: int | float = 10_000,
        batch_size: int = 1024,
        eval_batch_size: int = 10_000,
        num_workers: int = 0,
        seed: int = 42,
        download: bool = True,
        normalize: bool = True,
        augment: bool | list[Augmentation] = False,
        download_timeout: float = 30.0,
        extra_dirs: list[str] | None = None,
        extra_repeats: int = EXTRA_REPEATS,
        negatives: int = 0,
    ) -> None:
        super().__init__()
        data_dir = str(data_dir)  # checkpoints store plain strings: a Path would need pickle to load
        if isinstance(extra_dirs, (str, Path)):
            raise ConfigError(f"extra_dirs is a list of folders, got the single {str(extra_dirs)!r}: pass [it]")
        extra_dirs = [str(folder) for folder in extra_dirs] if extra_dirs else None
        distinct_folders(extra_dirs or [])
        self.save_hyperparameters()
        self._check_args()
        self.raw_dir = raw_folder(data_dir, dataset)
        self.class_names: list[str] = list(TORCHVISION_CLASSES[dataset].classes)
        self.input_mean, self.input_std = 0.0, 1.0
        self._split: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._resume: tuple[int, int] | None = None
        self._extras_digest: str | None = None

    def _check_args(self) -> None:
        """Validate the arguments before any file is read."""
        hp = self.hparams
        if hp.dataset not in TORCHVISION_CLASSES:
            raise ConfigError(f"dataset must be one of {sorted(TORCHVISION_CLASSES)}, got {hp.dataset!r}")
        whole = (("batch_size", 1, None), ("eval_batch_size", 1, None), ("num_workers", 0, None))
        for name, low, high in (*whole, ("extra_repeats", 1, MAX_EXTRA_REPEATS), ("negatives", 0, MAX_NEGATIVES)):
            value = hp[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                span = f"{low}-{high}" if high else f">= {low}"
                raise ConfigError(f"{name} must be a whole number {span}, got {value!r}")
        kinds = hp.augment
        if not isinstance(kinds, bool) and (
            not isinstance(kinds, (list, tuple)) or not set(kinds) <= set(AUGMENTATIONS)
        ):
            raise ConfigError(f"augment must be true, false or a list of {list(AUGMENTATIONS)}, got {kinds!r}")
        if not hp.download_timeout > 0:
            raise ConfigError(f"download_timeout must be > 0 seconds, got {hp.download_timeout!r}")
        val_size = hp.val_size
        if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
            raise ConfigError(f"val_size must be a count or a fraction, got {val_size!r}")
        official = ORIGINAL_COUNTS["train"]
        if not (0 < val_size < (1.0 if isinstance(val_size, float) else official)):
            raise ConfigError(
                f"val_size must be a count between 1 and {official - 1} or a fraction between 0 and 1 "
                f"of the {official:,} training images, got {val_size!r}"
            )
        if hp.negatives:
            letter_fonts()  # refused now, not after the training file is read, when no letter font is installed
        folder = raw_folder(hp.data_dir, hp.dataset)
        if not hp.download and not raw_files_present(folder, or_archives=True):
            raise ConfigError(f"the data files are not there and --data.download is false. {missing_hint(folder)}")

    def prepare_data(self) -> None:
        """Extract ``.gz`` archives that are there, download what is missing (on one process per node)."""
        if not raw_files_present(self.raw_dir):
            hp = self.hparams
            download(hp.dataset, self.raw_dir, timeout=hp.download_timeout, fetch=hp.download)

    def setup(self, stage: str | None = None) -> None:
        """Decode and verify the files a stage needs, once: the training file for ``fit``/``validate`` (split,
        statistics), the test file for ``test``/``predict``, both when ``stage`` is None."""
        if stage in (None, "fit", "validate"):
            self._load_training_split()
        if stage in (None, "test", "predict"):
            self._load_test_split()

    def _load_training_split(self) -> None:
        if "train" in self._split:
            return
        hp = self.hparams
        train_images, train_labels = load_split(self.raw_dir, hp.dataset, "train")
        num_train = len(train_labels)
        num_val = round(hp.val_size * num_train) if isinstance(hp.val_size, float) else hp.val_size
        if not 0 < num_val < num_train:
            raise ConfigError(f"val_size {hp.val_size!r} leaves no training or no validation images of {num_train:,}")
        if num_val < MIN_USEFUL_VAL:
            rank_zero_warn(
                f"--data.val_size {hp.val_size!r} validates on {num_val} image(s): val/acc moves in steps of "
                f"{1 / num_val:.0%}, so the best checkpoint is picked by chance. A fraction (e.g. 0.1) or a count "
                f">= {MIN_USEFUL_VAL} gives it meaning."
            )
        order = torch.randperm(num_train, generator=torch.Generator().manual_seed(hp.seed))
        train_idx, val_idx = order[num_val:], order[:num_val]
        train_images = train_images.unsqueeze(1)  # index_select: faster than tensor[index] for 50k images
        self._split["train"] = (train_images.index_select(0, train_idx), train_labels.index_select(0, train_idx))
        self._split["val"] = (train_images.index_select(0, val_idx), train_labels.index_select(0, val_idx))
        if hp.normalize:
            self.input_mean, self.input_std = pixel_statistics(self._split["train"][0])
        if hp.extra_dirs:  # after the statistics: extras never move the standardization the model learns with
            self._add_extras()
        if hp.negatives:
            images, labels = self._split["train"]
            others = negative_images(hp.negatives, hp.seed)
            self._split["train"] = (
                torch.cat([images, others]),
                torch.cat([labels, torch.full((len(others),), NEGATIVE_LABEL, dtype=labels.dtype)]),
            )

    def _add_extras(self) -> None:
        """Append the extra folders' images, each ``extra_repeats`` times, to the training split: rows like any
        other, so the seeded sampler draws each that many times per epoch."""
        images, labels = read_extra_images(self.hparams.extra_dirs)
        self._extras_digest = digest(images, labels)
        repeats, (train_images, train_labels) = self.hparams.extra_repeats, self._split["train"]
        self._split["train"] = (
            torch.cat([train_images, images.repeat(repeats, 1, 1, 1)]),
            torch.cat([train_labels, labels.repeat(repeats)]),
        )

    def _load_test_split(self) -> None:
        if "test" not in self._split:
            images, labels = load_split(self.raw_dir, self.hparams.dataset, "test")
            self._split["test"] = (images.unsqueeze(1), labels)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``train``, ``val`` or ``test`` split as ``(N, 1, 28, 28)`` pixels in [0, 1] and labels, on the CPU
        (converted from the stored bytes at each call)."""
        images, labels = self._stored(name)
        return images.float().div_(255), labels

    def _stored(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split as stored: ``(N, 1, 28, 28)`` uint8 images and labels, read from the files when first asked."""
        if name not in self._split:
            self.prepare_data()
            self.setup("test" if name == "test" else "fit")
        return self._split[name]

    def _tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split on the accelerator when the loader runs in this process (no copies per batch)."""
        images, labels = self._stored(split)
        device = torch.device("cpu")
        if self.trainer is not None and self.hparams.num_workers == 0:
            device = self.trainer.strategy.root_device
        return images.to(device), labels.to(device)

    def _loader(self, split: str, batch_size: int, shuffle: bool, with_index: bool = False) -> DataLoader:
        images, labels = self._tensors(split)
        tensors = (images, labels, torch.arange(len(labels), device=labels.device)) if with_index else (images, labels)
        rank, world_size = (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        if shuffle:
            sampler = EpochBatchSampler(len(labels), batch_size, self.hparams.seed, rank, world_size)
        else:
            sampler = OrderedBatchSampler(len(labels), batch_size, rank, world_size)
        return DataLoader(
            TensorBatches(*tensors),
            sampler=sampler,
            batch_size=None,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            # workers' seeds come from here, not from torch's global generator (which draws dropout masks):
            # a resumed run creates its loader at another point of that generator's sequence
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )

    def train_dataloader(self) -> DataLoader:
        overfitting = self.trainer is not None and self.trainer.overfit_batches > 0  # the same batches every epoch
        loader = self._loader("train", self.hparams.batch_size, shuffle=not overfitting)
        if self._resume is not None:
            epoch, done = self._resume
            if done >= len(loader.sampler):  # saved at the end of an epoch: the next one starts afresh
                epoch, done = epoch + 1, 0
            # set now: with worker processes Lightning starts iterating before it sets the epoch itself
            loader.sampler.set_epoch(epoch)
            loader.sampler.resume_at(epoch, done)
            self._resume = None
        return loader

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test images, each batch with labels and positions in the test file: ``(images, labels, index)``."""
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False, with_index=True)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches on the device they will be trained on, seeded per batch."""
        kinds = self.augmentations
        if not (kinds and self.trainer is not None and self.trainer.training):
            return batch
        images, labels = batch
        batch_number = self.trainer.fit_loop.total_batch_idx
        generator = torch.Generator(images.device).manual_seed(self.hparams.seed * 1_000_003 + batch_number)
        return augment(images, generator, kinds), labels

    @property
    def augmentations(self) -> tuple[str, ...]:
        """The kinds of augmentation of training batches (``augment=true`` means ``affine``)."""
        kinds = self.hparams.augment
        if isinstance(kinds, bool):
            return ("affine",) if kinds else ()
        return tuple(kinds)

    def state_dict(self) -> dict[str, Any]:
        """The dataset, and where training is in the epoch (the input statistics travel in the model's state).

        The position is the trainer's own count of trained batches: the sampler runs ahead of training
        whenever worker processes prefetch batches.
        """
        state: dict[str, Any] = {"dataset": self.hparams.dataset}
        if self._extras_digest is not None:
            state["extras_digest"] = self._extras_digest
        if self.trainer is not None and self.trainer.training:
            state["train_epoch"] = self.trainer.current_epoch
            state["train_batches_done"] = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        trained_on = state_dict.get("dataset", self.hparams.dataset)
        if trained_on != self.hparams.dataset:
            raise DataError(
                f"The checkpoint was trained on {trained_on}, but the data is {self.hparams.dataset}: "
                f"pass --data.dataset {trained_on}."
            )
        saved = state_dict.get("extras_digest")
        if self._extras_digest is not None and saved is not None and saved != self._extras_digest:
            rank_zero_warn(
                f"--data.extra_dirs {self.hparams.extra_dirs}: the folders' images changed since the checkpoint was "
                "saved, so the resumed run trains on other batches than an uninterrupted one would"
            )
        if "train_epoch" in state_dict:
            self._resume = (int(state_dict["train_epoch"]), int(state_dict["train_batches_done"]))


def pixel_statistics(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation (unbiased, as ``Tensor.std``) of uint8 images as pixels in [0, 1].

    Computed from the histogram of the 256 byte values in float64: exact, and without the float copy of the
    training split that ``images.float().std()`` would make.

    >>> images = torch.tensor([[0, 255], [51, 102]], dtype=torch.uint8)
    >>> mean, std = pixel_statistics(images)
    >>> pixels = images.double() / 255
    >>> round(mean, 12) == round(pixels.mean().item(), 12), round(std, 12) == round(pixels.std().item(), 12)
    (True, True)
    """
    counts = torch.bincount(images.reshape(-1), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum()
    mean = (counts * values).sum() / n
    variance = (counts * (values - mean) ** 2).sum() / (n - 1)
    return mean.item(), variance.sqrt().item()
