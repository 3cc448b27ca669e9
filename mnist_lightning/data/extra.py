"""Extra labelled images for the training split: folders of corrections in torchvision's ``ImageFolder`` layout.

``DIR/7/anything.png`` is a "7". Every image, whatever its size, goes through
:func:`~mnist_lightning.preprocessing.preprocess`, the preprocessing ``predict_images`` and the server apply, so the
model trains on exactly what it is shown at inference, then is stored as MNIST's pixels are (bytes, rounded to the
nearest of 256 grey levels). The layout is read with torchvision's ``find_classes`` and ``make_dataset``; this
module adds the strictness a training run needs: a folder name other than a digit, a file that is no image, one
that cannot be decoded or is blank is a one-line error naming it, rather than an image silently left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, has_file_allowed_extension, make_dataset

from mnist_lightning.errors import DataError
from mnist_lightning.images import ImageError
from mnist_lightning.preprocessing import preprocess

CLASS_NAMES = tuple(str(digit) for digit in range(10))
"""The class folders an extra folder may hold: the label's number, ``0`` to ``9``."""


def is_hidden(path: str | Path) -> bool:
    """Names starting with a dot are skipped: ``.DS_Store``, and the ``.NAME.PID.partial`` files an atomic writer
    (a collecting server) leaves while it writes."""
    return Path(path).name.startswith(".")


def list_extra_images(folder: str | Path) -> list[tuple[str, int]]:
    """``(path, label)`` of every image in ``folder``'s class folders, sorted (the order is part of a run's
    reproducibility); one-line errors for anything that does not belong there."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"--data.extra_dirs: {root} is not a folder; expected a folder holding 0/ ... 9/ of images")
    for entry in sorted(root.iterdir()):
        if not is_hidden(entry) and not (entry.is_dir() and entry.name in CLASS_NAMES):
            raise DataError(
                f"--data.extra_dirs: {entry} does not belong in {root}: expected only class folders named 0-9 "
                "(torchvision's ImageFolder layout, e.g. 7/x.png); move it out"
            )
    try:
        classes = [name for name in find_classes(root)[0] if not is_hidden(name)]
    except FileNotFoundError:
        classes = []
    if not classes:
        raise DataError(f"--data.extra_dirs: {root} is empty: expected class folders 0-9 holding images")
    samples = make_dataset(root, {name: int(name) for name in classes}, is_valid_file=_is_image_file, allow_empty=True)
    if not samples:
        raise DataError(f"--data.extra_dirs: {root} holds no images: expected image files in its 0-9 folders")
    return samples


def _is_image_file(path: str) -> bool:
    """An image by its extension (torchvision's ``IMG_EXTENSIONS``); any other visible file is an error."""
    if any(is_hidden(part) for part in Path(path).parts[-2:]):
        return False
    if not has_file_allowed_extension(path, IMG_EXTENSIONS):
        raise DataError(
            f"--data.extra_dirs: {path} is not an image file: expected one of {', '.join(IMG_EXTENSIONS)}; "
            "move it out of the folder"
        )
    return True


def read_extra_images(folders: Sequence[str | Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of ``folders`` preprocessed like ``predict_images``: ``(N, 1, 28, 28)`` uint8 and labels."""
    digits, labels = [], []
    for folder in folders:
        for path, label in list_extra_images(folder):
            try:
                digit = preprocess(path)
            except ImageError as err:
                message = str(err)
                said = message if message.startswith(path) else f"{path}: {message}"
                raise DataError(f"--data.extra_dirs: {said}; fix or remove the file") from None
            digits.append(digit.mul(255).round_().to(torch.uint8))
            labels.append(label)
    return torch.stack(digits), torch.tensor(labels, dtype=torch.long)


def digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    """A fingerprint of the extra images: a resumed run checks that its folders still hold what they held."""
    return hashlib.sha1(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
