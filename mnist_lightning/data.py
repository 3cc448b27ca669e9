"""MNIST-style data: verified IDX files, a seeded split, and in-memory batch loaders.

The four IDX files are decoded once into tensors and checked: size, header, matching image and label
counts, label range and, for files the size of the MNIST originals, the originals' checksums. Batches are
served by indexing those tensors with one index tensor per batch: no per-sample PIL conversion, no
per-sample collate, no worker processes needed. On a GPU the tensors live on the device.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import KMNIST, MNIST, FashionMNIST

from mnist_lightning.errors import ConfigError, DataError

DatasetName = Literal["mnist", "fashion_mnist", "kmnist"]
TORCHVISION_CLASSES: dict[str, type[MNIST]] = {"mnist": MNIST, "fashion_mnist": FashionMNIST, "kmnist": KMNIST}

IMAGE_SIDE = 28
OFFICIAL_TRAIN_SIZE = 60_000
RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ORIGINAL_COUNTS = {"train": 60_000, "test": 10_000}
# MD5 of the uncompressed originals, the files torchvision extracts from the published archives.
KNOWN_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }
}
IDX_UBYTE = 0x08
VERIFIED_STAMP = ".verified.json"


def raw_folder(data_dir: str | Path, dataset: DatasetName) -> Path:
    """Where torchvision keeps the raw IDX files of ``dataset`` under ``data_dir``."""
    return Path(data_dir) / TORCHVISION_CLASSES[dataset].__name__ / "raw"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _damaged(path: Path, problem: str) -> DataError:
    return DataError(
        f"{path}: {problem}. The file is damaged or is not the file this name stands for. "
        f"Delete it so that it is downloaded again, or point --data.data_dir at a folder with intact files."
    )


def parse_idx(path: Path, data: bytes, ndim: int) -> torch.Tensor:
    """Decode an IDX file of unsigned bytes: labels (``ndim=1``) or 28x28 images (``ndim=3``), checking everything.

    torchvision's reader trusts the header and fails with bare assertions or reshape errors; this one
    names the file and the problem.

    >>> header = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big")
    >>> parse_idx(Path("labels"), header + bytes([7, 0, 9]), ndim=1).tolist()
    [7, 0, 9]
    """
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise _damaged(path, f"it is {len(data)} bytes long, shorter than an IDX header ({header_size} bytes)")
    zero, dtype_code, file_ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype_code != IDX_UBYTE or file_ndim != ndim:
        raise _damaged(
            path,
            f"bad IDX magic number {data[:4].hex()}: expected 000008{ndim:02x} (unsigned bytes, {ndim} dimensions)",
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if dims[1:] != [IMAGE_SIDE] * (ndim - 1) or dims[0] == 0:
        expected = ["N", *[IMAGE_SIDE] * (ndim - 1)]
        raise _damaged(path, f"its header says shape {dims}, expected {expected} with N >= 1")
    expected_size = header_size + math.prod(dims)
    if len(data) != expected_size:
        raise _damaged(path, f"it is {len(data):,} bytes long, expected {expected_size:,} for shape {dims}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header_size).reshape(dims)


class _VerifiedStamps:
    """Remembers which files already passed the checksum, keyed by size and mtime, to skip re-hashing."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / VERIFIED_STAMP
        try:
            self.entries: dict[str, list[int]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    @staticmethod
    def _key(path: Path) -> list[int]:
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]

    def known_good(self, path: Path) -> bool:
        return self.entries.get(path.name) == self._key(path)

    def remember(self, path: Path) -> None:
        self.entries[path.name] = self._key(path)
        try:
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only data folder only costs a re-hash next time


def load_split(
    folder: Path, dataset: DatasetName, split: Literal["train", "test"]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read and verify one split's images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64."""
    image_name, label_name = RAW_FILES[split]
    known = KNOWN_MD5.get(dataset, {})
    stamps = _VerifiedStamps(folder)
    tensors = []
    for name, ndim in ((image_name, 3), (label_name, 1)):
        path = folder / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path} is missing. {_missing_hint(folder)}") from None
        except OSError as err:
            raise DataError(f"{path} cannot be read ({err.strerror}). Check its permissions.") from None
        tensors.append(parse_idx(path, data, ndim))
        is_original_size = len(tensors[-1]) == ORIGINAL_COUNTS[split]
        if name in known and is_original_size and not stamps.known_good(path):
            if _md5(data) != known[name]:
                raise _damaged(path, f"its MD5 is {_md5(data)}, the original's is {known[name]}")
            stamps.remember(path)
    images, labels = tensors
    if len(images) != len(labels):
        raise _damaged(
            folder / image_name,
            f"it holds {len(images):,} images but {label_name} holds {len(labels):,} labels "
            "(was one of them replaced by another split's file?)",
        )
    labels = labels.long()
    if labels.max() >= 10:
        raise _damaged(folder / label_name, f"it holds label {int(labels.max())}, expected labels 0-9")
    return images, labels


def _missing_hint(folder: Path) -> str:
    return (
        f"Looked for the raw IDX files in {folder}. Point --data.data_dir at the folder that holds "
        f"{folder.parent.name}/raw/ (e.g. --data.data_dir ../shared/data), or download them on a machine with "
        f"internet access (--data.download true, the default)."
    )


def raw_files_present(folder: Path) -> bool:
    return all((folder / name).is_file() for names in RAW_FILES.values() for name in names)


def download(
    dataset: DatasetName,
    folder: Path,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Fetch the missing raw files of ``dataset`` into ``folder``, trying each mirror in turn.

    Unlike torchvision's downloader this never hangs (every socket operation and every whole file has a
    deadline), leaves no partial files behind, and checks what it fetched before putting it in place.
    """
    source = TORCHVISION_CLASSES[dataset]
    mirrors = list(mirrors or source.mirrors)
    folder.mkdir(parents=True, exist_ok=True)
    for archive, archive_md5 in source.resources:
        target = folder / archive.removesuffix(".gz")
        if target.is_file():
            continue
        failures = []
        for mirror in mirrors:
            try:
                _fetch_archive(f"{mirror}{archive}", archive_md5, target, dataset, timeout)
                break
            except (OSError, DataError) as err:
                failures.append(f"  {mirror}{archive}: {err}")
        else:
            raise DataError(
                f"Could not download {archive} from any mirror:\n" + "\n".join(failures) + f"\n{_missing_hint(folder)}"
            )


def _fetch_archive(url: str, archive_md5: str, target: Path, dataset: DatasetName, timeout: float) -> None:
    partial_gz = target.with_name(f".{target.name}.gz.partial")
    partial = target.with_name(f".{target.name}.partial")
    deadline = time.monotonic() + 20 * timeout
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "mnist-lightning"})
        with urllib.request.urlopen(request, timeout=timeout) as response, partial_gz.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the transfer took longer than {20 * timeout:.0f} s")
        if dataset not in KNOWN_MD5:  # MNIST's uncompressed originals are checked against their own MD5 below
            digest = hashlib.md5(partial_gz.read_bytes(), usedforsecurity=False).hexdigest()
            if digest != archive_md5:
                raise DataError(f"the archive's MD5 is {digest}, expected {archive_md5}")
        with gzip.open(partial_gz, "rb") as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        expected = KNOWN_MD5.get(dataset, {}).get(target.name)
        if expected is not None and _md5(partial.read_bytes()) != expected:
            raise DataError(f"the extracted file's MD5 is not the original's {expected}")
        os.replace(partial, target)
    except (gzip.BadGzipFile, EOFError) as err:
        raise DataError(f"not a valid gzip archive ({err})") from None
    except urllib.error.URLError as err:
        raise OSError(f"{err.reason}") from None
    finally:
        partial_gz.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)


class EpochBatchSampler:
    """Yields one index tensor per batch; the order is a pure function of ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every training epoch, so a resumed run sees exactly the
    batches an uninterrupted run would. ``start_batch`` skips batches already trained in a resumed epoch.
    Under DDP each rank takes every ``world_size``-th index; training shards are cut to equal length
    (a different handful of samples rests each epoch) while evaluation shards keep every sample once.

    >>> sampler = EpochBatchSampler(5, batch_size=2, shuffle=False, seed=0)
    >>> [batch.tolist() for batch in sampler]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        equal_shards: bool = False,
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.equal_shards = equal_shards
        self.epoch = 0
        self.batches_done = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Skip the first ``batches_done`` batches the next time ``epoch`` is iterated."""
        self._resume = (epoch, batches_done)

    def _shard_size(self) -> int:
        if self.equal_shards:
            return self.num_samples // self.world_size
        return len(range(self.rank, self.num_samples, self.world_size))

    def __len__(self) -> int:
        return math.ceil(self._shard_size() / self.batch_size)

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        return order[self.rank :: self.world_size][: self._shard_size()]

    def __iter__(self) -> Iterator[torch.Tensor]:
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            start = self._resume[1]
        self._resume = None
        indices = self._indices()
        self.batches_done = start
        for first in range(start * self.batch_size, len(indices), self.batch_size):
            self.batches_done += 1  # counted when handed out: a checkpoint taken after this step includes it
            yield indices[first : first + self.batch_size]


class TensorBatches(Dataset):
    """Equal-length tensors indexed a whole batch at a time.

    ``torch.index_select`` gathers a batch several times faster than ``tensor[index]`` (which
    ``TensorDataset`` uses), and the gather is most of the data path's cost.
    """

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        index = index.to(self.tensors[0].device, non_blocking=True)
        return tuple(torch.index_select(tensor, 0, index) for tensor in self.tensors)


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
    fill: float = 0.0,
) -> torch.Tensor:
    """Rotate, shift and scale every image of a ``(N, 1, H, W)`` batch by its own random amount, in one call."""
    n = images.shape[0]
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(n, device=device).uniform_(low, high, generator=generator)

    angle = torch.deg2rad(uniform(-degrees, degrees))
    factor = 1.0 / uniform(*scale)
    cos, sin = torch.cos(angle) * factor, torch.sin(angle) * factor
    shift_x, shift_y = uniform(-2 * translate, 2 * translate), uniform(-2 * translate, 2 * translate)
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    shifted = images - fill  # grid_sample pads with zeros: sample around the background value instead
    return F.grid_sample(shifted, grid, align_corners=False, padding_mode="zeros") + fill


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
        normalize: Standardize pixels with the mean and std of the training split.
        augment: Random small rotations, shifts and zooms of training batches (never of evaluation ones).
        download_timeout: Seconds a download may wait for the server before trying the next mirror.
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
        augment: bool = False,
        download_timeout: float = 30.0,
    ) -> None:
        super().__init__()
        data_dir = str(data_dir)  # checkpoints store plain strings: a Path would need pickle to load
        self.save_hyperparameters()
        self._check_args()
        self.raw_dir = raw_folder(data_dir, dataset)
        self.num_classes = 10
        self.class_names: list[str] = list(TORCHVISION_CLASSES[dataset].classes)
        self.mean, self.std = 0.0, 1.0
        self._split: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._train_sampler: EpochBatchSampler | None = None
        self._resume: tuple[int, int] | None = None

    def _check_args(self) -> None:
        """Validate the arguments before any file is read."""
        hp = self.hparams
        if hp.dataset not in TORCHVISION_CLASSES:
            raise ConfigError(f"dataset must be one of {sorted(TORCHVISION_CLASSES)}, got {hp.dataset!r}")
        for name in ("batch_size", "eval_batch_size"):
            if isinstance(hp[name], bool) or not isinstance(hp[name], int) or hp[name] < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {hp[name]!r}")
        if isinstance(hp.num_workers, bool) or not isinstance(hp.num_workers, int) or hp.num_workers < 0:
            raise ConfigError(f"num_workers must be a whole number >= 0, got {hp.num_workers!r}")
        if not hp.download_timeout > 0:
            raise ConfigError(f"download_timeout must be > 0 seconds, got {hp.download_timeout!r}")
        val_size = hp.val_size
        if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
            raise ConfigError(f"val_size must be a count or a fraction, got {val_size!r}")
        if not (0 < val_size < (1.0 if isinstance(val_size, float) else OFFICIAL_TRAIN_SIZE)):
            raise ConfigError(
                f"val_size must be a count between 1 and {OFFICIAL_TRAIN_SIZE - 1} or a fraction between 0 and 1 "
                f"of the {OFFICIAL_TRAIN_SIZE:,} training images, got {val_size!r}"
            )
        folder = raw_folder(hp.data_dir, hp.dataset)
        if not hp.download and not raw_files_present(folder):
            raise ConfigError(f"the data files are not there and --data.download is false. {_missing_hint(folder)}")

    def prepare_data(self) -> None:
        """Download missing files (Lightning calls this on one process per node)."""
        if not raw_files_present(self.raw_dir):
            if not self.hparams.download:
                raise DataError(f"The raw files are missing. {_missing_hint(self.raw_dir)}")
            download(self.hparams.dataset, self.raw_dir, timeout=self.hparams.download_timeout)

    def setup(self, stage: str | None = None) -> None:
        """Decode and verify the files once, split the training set, compute the normalization."""
        if self._split:
            return
        hp = self.hparams
        train_images, train_labels = load_split(self.raw_dir, hp.dataset, "train")
        test_images, test_labels = load_split(self.raw_dir, hp.dataset, "test")
        num_train = len(train_labels)
        num_val = round(hp.val_size * num_train) if isinstance(hp.val_size, float) else hp.val_size
        if not 0 < num_val < num_train:
            raise ConfigError(f"val_size {hp.val_size!r} leaves no training or no validation images of {num_train:,}")
        order = torch.randperm(num_train, generator=torch.Generator().manual_seed(hp.seed))
        train_idx, val_idx = order[num_val:], order[:num_val]
        if hp.normalize and (self.mean, self.std) == (0.0, 1.0):  # unless a checkpoint's state already set them
            pixels = train_images[train_idx].float().div_(255)
            self.mean, self.std = pixels.mean().item(), pixels.std().item()
        self._split = {
            "train": (train_images[train_idx], train_labels[train_idx]),
            "val": (train_images[val_idx], train_labels[val_idx]),
            "test": (test_images, test_labels),
        }

    def _tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split as normalized ``(N, 1, 28, 28)`` float images and labels, on the accelerator when possible."""
        if not self._split:
            self.setup()
        images, labels = self._split[split]
        device = torch.device("cpu")
        if self.trainer is not None and self.hparams.num_workers == 0:
            device = self.trainer.strategy.root_device
        images = images.to(device).unsqueeze(1).float().div_(255).sub_(self.mean).div_(self.std)
        return images, labels.to(device)

    def _world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _loader(self, split: str, batch_size: int, shuffle: bool, with_index: bool = False) -> DataLoader:
        images, labels = self._tensors(split)
        tensors = (images, labels, torch.arange(len(labels), device=labels.device)) if with_index else (images, labels)
        rank, world_size = self._world()
        sampler = EpochBatchSampler(
            len(labels), batch_size, shuffle, self.hparams.seed, rank, world_size, equal_shards=shuffle
        )
        return DataLoader(
            TensorBatches(*tensors),
            sampler=sampler,
            batch_size=None,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        loader = self._loader("train", self.hparams.batch_size, shuffle=True)
        self._train_sampler = loader.sampler
        if self._resume is not None:
            self._train_sampler.resume_at(*self._resume)
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
        if not (self.hparams.augment and self.trainer is not None and self.trainer.training):
            return batch
        images, labels = batch
        batch_number = self.trainer.fit_loop.total_batch_idx
        generator = torch.Generator(images.device).manual_seed(self.hparams.seed * 1_000_003 + batch_number)
        background = (0.0 - self.mean) / self.std
        return random_affine(images, generator, fill=background), labels

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to resume mid-epoch and to preprocess images like training did."""
        state: dict[str, Any] = {"mean": self.mean, "std": self.std, "dataset": self.hparams.dataset}
        if self._train_sampler is not None:
            state["train_epoch"] = self._train_sampler.epoch
            state["train_batches_done"] = self._train_sampler.batches_done
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        trained_on = state_dict.get("dataset", self.hparams.dataset)
        if trained_on != self.hparams.dataset:
            raise DataError(
                f"The checkpoint was trained on {trained_on}, but the data is {self.hparams.dataset}: "
                f"pass --data.dataset {trained_on}."
            )
        self.mean, self.std = float(state_dict["mean"]), float(state_dict["std"])
        if "train_epoch" in state_dict:
            self._resume = (int(state_dict["train_epoch"]), int(state_dict["train_batches_done"]))
