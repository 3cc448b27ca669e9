"""The raw IDX files: where they live, how they are decoded, and how they are verified.

torchvision's reader trusts the header and fails with bare assertions or reshape errors; this one checks
size, header, matching image and label counts, label range and, for files the size of the MNIST originals,
the originals' checksums, and names the file and the problem in one line.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Literal

import torch
from torchvision.datasets import KMNIST, MNIST, FashionMNIST
from torchvision.datasets.utils import calculate_md5

from mnist_lightning.errors import DataError

DatasetName = Literal["mnist", "fashion_mnist", "kmnist"]
TORCHVISION_CLASSES: dict[str, type[MNIST]] = {"mnist": MNIST, "fashion_mnist": FashionMNIST, "kmnist": KMNIST}

IMAGE_SIDE = 28
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


def raw_folder(data_dir: str | Path, dataset: DatasetName) -> Path:
    """Where torchvision keeps the raw IDX files of ``dataset`` under ``data_dir``."""
    return Path(data_dir) / TORCHVISION_CLASSES[dataset].__name__ / "raw"


def raw_files_present(folder: Path, or_archives: bool = False) -> bool:
    """Whether the four raw files are there (or, with ``or_archives``, each at least as a ``.gz`` archive)."""
    names = [name for pair in RAW_FILES.values() for name in pair]
    return all((folder / name).is_file() or (or_archives and (folder / f"{name}.gz").is_file()) for name in names)


def missing_hint(folder: Path) -> str:
    return (
        f"Looked for the raw IDX files in {folder}. Point --data.data_dir at the folder that holds "
        f"{folder.parent.name}/raw/ (e.g. --data.data_dir ../shared/data), or download them on a machine with "
        f"internet access (--data.download true, the default)."
    )


def damaged(path: Path, problem: str) -> DataError:
    return DataError(
        f"{path}: {problem}. The file is damaged or is not the file this name stands for. "
        f"Delete it so that it is downloaded again, or point --data.data_dir at a folder with intact files."
    )


def parse_idx(path: Path, data: bytes, ndim: int) -> torch.Tensor:
    """Decode an IDX file of unsigned bytes: labels (``ndim=1``) or 28x28 images (``ndim=3``), checking everything.

    >>> header = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big")
    >>> parse_idx(Path("labels"), header + bytes([7, 0, 9]), ndim=1).tolist()
    [7, 0, 9]
    """
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise damaged(path, f"it is {len(data)} bytes long, shorter than an IDX header ({header_size} bytes)")
    zero, dtype_code, file_ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype_code != IDX_UBYTE or file_ndim != ndim:
        raise damaged(
            path,
            f"bad IDX magic number {data[:4].hex()}: expected 000008{ndim:02x} (unsigned bytes, {ndim} dimensions)",
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if dims[1:] != [IMAGE_SIDE] * (ndim - 1) or dims[0] == 0:
        expected = ["N", *[IMAGE_SIDE] * (ndim - 1)]
        raise damaged(path, f"its header says shape {dims}, expected {expected} with N >= 1")
    expected_size = header_size + math.prod(dims)
    if len(data) != expected_size:
        raise damaged(path, f"it is {len(data):,} bytes long, expected {expected_size:,} for shape {dims}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header_size).reshape(dims)


class VerifiedStamps:
    """Remembers which files already passed the checksum, keyed by path, size, mtime and inode, to skip re-hashing.

    The record lives in the user's cache folder (``$XDG_CACHE_HOME/mnist_lightning``, else
    ``~/.cache/mnist_lightning``), never beside the data: a data folder may be shared or read-only, and root
    would write into it regardless of its permissions.
    """

    def __init__(self) -> None:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        self.path = Path(cache) / "mnist_lightning" / "verified.json"
        try:
            self.entries: dict[str, list[int]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    @staticmethod
    def _key(path: Path) -> list[int]:
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns, stat.st_ino]

    def known_good(self, path: Path) -> bool:
        return self.entries.get(str(path.resolve())) == self._key(path)

    def remember(self, path: Path) -> None:
        self.entries[str(path.resolve())] = self._key(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
        except OSError:
            pass  # no writable cache only costs a re-hash next time


def load_split(
    folder: Path, dataset: DatasetName, split: Literal["train", "test"]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read and verify one split's images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64."""
    image_name, label_name = RAW_FILES[split]
    known = KNOWN_MD5.get(dataset, {})
    stamps = VerifiedStamps()
    tensors = []
    for name, ndim in ((image_name, 3), (label_name, 1)):
        path = folder / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path} is missing. {missing_hint(folder)}") from None
        except OSError as err:
            raise DataError(f"{path} cannot be read ({err.strerror}). Check its permissions.") from None
        tensors.append(parse_idx(path, data, ndim))
        is_original_size = len(tensors[-1]) == ORIGINAL_COUNTS[split]
        if name in known and is_original_size and not stamps.known_good(path):
            if (digest := calculate_md5(path)) != known[name]:
                raise damaged(path, f"its MD5 is {digest}, the original's is {known[name]}")
            stamps.remember(path)
    images, labels = tensors
    if len(images) != len(labels):
        raise _mismatch(folder, split, len(images), len(labels))
    labels = labels.long()
    if labels.max() >= 10:
        raise damaged(folder / label_name, f"it holds label {int(labels.max())}, expected labels 0-9")
    return images, labels


def _mismatch(folder: Path, split: Literal["train", "test"], num_images: int, num_labels: int) -> DataError:
    """Blame the file whose count is not the split's original one (both, when neither is)."""
    image_name, label_name = RAW_FILES[split]
    other = RAW_FILES["test" if split == "train" else "train"]
    original = ORIGINAL_COUNTS[split]
    if num_images == original:
        culprit, holds, swapped_with = label_name, f"{num_labels:,} labels", other[1]
    elif num_labels == original:
        culprit, holds, swapped_with = image_name, f"{num_images:,} images", other[0]
    else:
        return damaged(
            folder / image_name, f"it holds {num_images:,} images but {label_name} holds {num_labels:,} labels"
        )
    return damaged(
        folder / culprit,
        f"it holds {holds} where the {split} split has {original:,} (was it swapped with {swapped_with}?)",
    )
