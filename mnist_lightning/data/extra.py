"""Extra labelled images for the training split: folders of corrections in torchvision's ``ImageFolder`` layout.

``DIR/7/anything.png`` is a "7". Every image, whatever its size, goes through
:func:`~mnist_lightning.preprocessing.preprocess`, the preprocessing ``predict_images`` and the server apply, so the
model trains on exactly what it is shown at inference, then is stored as MNIST's pixels are (bytes, rounded to the
nearest of 256 grey levels). A training run needs more strictness than torchvision's ``make_dataset`` (which walks
subfolders and follows links): a folder name other than a digit, a subfolder, a link, a file that is no image, one
that cannot be decoded or is blank is a one-line error naming it, rather than an image silently left out or added.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from mnist_lightning.errors import ConfigError, DataError
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
    reproducibility); one-line errors for anything that does not belong there.

    Only the image files directly inside ``0/`` ... ``9/`` are read: a subfolder there is an error rather than
    more images (hidden ones are skipped whole), and a symbolic link inside the folder is refused, never followed,
    so the run reads nothing outside the folder the command line named and no link loop can be walked."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"--data.extra_dirs: {root} is not a folder; expected a folder holding 0/ ... 9/ of images")
    samples: list[tuple[str, int]] = []
    classes = [entry for entry in sorted(root.iterdir()) if not is_hidden(entry)]
    for class_folder in classes:
        _refuse_link(class_folder)
        if not (class_folder.is_dir() and class_folder.name in CLASS_NAMES):
            raise DataError(
                f"--data.extra_dirs: {class_folder} does not belong in {root}: expected only class folders named 0-9 "
                "(torchvision's ImageFolder layout, e.g. 7/x.png); move it out"
            )
        for entry in sorted(class_folder.iterdir()):
            if is_hidden(entry):
                continue
            _refuse_link(entry)
            if not entry.is_file():
                raise DataError(
                    f"--data.extra_dirs: {entry} is a folder inside a class folder: expected image files only "
                    f"(e.g. {class_folder.name}/x.png); move it out"
                )
            if not has_file_allowed_extension(entry.name, IMG_EXTENSIONS):
                raise DataError(
                    f"--data.extra_dirs: {entry} is not an image file: expected one of {', '.join(IMG_EXTENSIONS)}; "
                    "move it out of the folder"
                )
            samples.append((str(entry), int(class_folder.name)))
    if not classes:
        raise DataError(f"--data.extra_dirs: {root} is empty: expected class folders 0-9 holding images")
    if not samples:
        raise DataError(f"--data.extra_dirs: {root} holds no images: expected image files in its 0-9 folders")
    return samples


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise DataError(
            f"--data.extra_dirs: {path} is a symbolic link: links inside the folder are not followed; "
            "copy what it points at into the folder instead"
        )


def distinct_folders(folders: Sequence[str | Path]) -> None:
    """The same folder twice (by another spelling or a link) would count every image of it twice: refused."""
    seen: dict[Path, str] = {}
    for folder in folders:
        resolved = Path(folder).resolve()
        if resolved in seen:
            raise ConfigError(
                f"--data.extra_dirs names {seen[resolved]} and {folder}, the same folder: give it once "
                "(--data.extra_repeats repeats a folder's images)"
            )
        seen[resolved] = str(folder)


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
