"""Use a trained model in scripts: safe checkpoint loading and prediction.

Example::

    from mnist_lightning.inference import load_model, predict_images

    model = load_model("lightning_logs/version_0/checkpoints/last.ckpt")
    predict_images(model, ["my_digit.png", "another.jpg"]).labels   # tensor([7, 3])

Images are read and made MNIST-like by :mod:`mnist_lightning.preprocessing`; the model standardizes those pixels
itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from mnist_lightning.checkpoint import build_model, read_checkpoint
from mnist_lightning.errors import CheckpointError
from mnist_lightning.images import ImageError, ImageInput
from mnist_lightning.models import ALLOWLIST, LitClassifier
from mnist_lightning.preprocessing import preprocess, preprocess_batch

__all__ = ["ImageError", "Predictions", "classify", "load_model", "predict_digits", "predict_image", "predict_images"]
"""``ImageError`` is what :func:`predict_images` raises for an image it cannot read, so it is importable here too."""


UNSURE_BELOW = 0.8
"""A calibrated top probability under this is "not sure": such an answer is wrong about one time in five or
more, so the predict command and the page name the two likeliest digits instead of one."""
NOT_A_DIGIT_BELOW = 0.4
"""A calibrated top probability under this is "does not look like a digit": a model trained with
``--data.negatives`` spreads its probability over all ten digits for letters, scribbles and noise, while a digit
it merely cannot decide on still splits most of it between two."""
SHIPPED_MODEL = Path(__file__).parent / "shipped" / "model.ckpt"
"""The trained CNN the package ships, made by ``python bench/shipped_model.py``: what ``mnist-serve`` and
``mnist-predict`` use when no ``--ckpt`` is given. It is loaded through the same vetting as any checkpoint."""
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
"""The files of a folder that :func:`classify` reads."""


class Predictions(NamedTuple):
    labels: torch.Tensor
    """Predicted class of each image, shape ``(N,)``."""
    probabilities: torch.Tensor
    """Calibrated class probabilities of each image, shape ``(N, num_classes)`` (see ``LitClassifier.temperature``)."""

    @property
    def unsure(self) -> torch.Tensor:
        """Whether each answer's probability is under :data:`UNSURE_BELOW`, shape ``(N,)``."""
        return self.probabilities.amax(dim=1) < UNSURE_BELOW

    @property
    def not_a_digit(self) -> torch.Tensor:
        """Whether each image looks like no digit at all (top probability under :data:`NOT_A_DIGIT_BELOW`),
        shape ``(N,)``; every such answer is also :attr:`unsure`."""
        return self.probabilities.amax(dim=1) < NOT_A_DIGIT_BELOW

    @property
    def runner_up(self) -> torch.Tensor:
        """The second likeliest class of each image, shape ``(N,)``: with an unsure answer, the other candidate."""
        return self.probabilities.scatter(1, self.labels[:, None], -1.0).argmax(dim=1)  # never the label, ties too


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LitClassifier:
    """The model of a checkpoint written by this project, in eval mode, loaded with ``weights_only=True``.

    A checkpoint that carries pickled code is refused (and nothing in it is executed); hyperparameters are
    checked before the model is built. The model takes pixels in [0, 1]: ``load_model(path)(images)``.
    """
    return build_model(read_checkpoint(path), ALLOWLIST).to(map_location).eval()


@torch.no_grad()
def predict_images(
    model: LitClassifier, images: ImageInput | Iterable[ImageInput], batch_size: int = 256
) -> Predictions:
    """Labels and class probabilities for one image or many: paths, PIL images, tensors or numpy arrays.

    Every image is preprocessed like MNIST (:func:`mnist_lightning.preprocessing.preprocess`); the model
    standardizes the pixels itself. A torch tensor follows torch's batch layout: ``(H, W)`` is one image,
    ``(N, H, W)`` and ``(N, C, H, W)`` (C = 1 gray, 3 RGB, 4 RGBA) are N images; so a ``(3, H, W)`` tensor is
    three images, never one RGB image (pass ``image[None]``). A numpy array follows PIL's layout and is always
    one image: ``(H, W)`` or ``(H, W, C)``, as ``np.asarray(pil_image)`` gives. A folder is not read: pass its
    files (the predict command reads folders).
    """
    return predict_digits(model, preprocess_batch(images), batch_size)


@torch.no_grad()
def predict_digits(model: LitClassifier, digits: torch.Tensor, batch_size: int = 256) -> Predictions:
    """Labels and class probabilities for digits that are already preprocessed, ``(N, 1, 28, 28)``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probabilities = torch.cat([model.probabilities(chunk.to(device)).cpu() for chunk in digits.split(batch_size)])
    model.train(was_training)
    return Predictions(probabilities.argmax(dim=1), probabilities)


def shipped_card() -> dict:
    """What the shipped model was trained by and what it measured (``model.json`` beside it): MNIST test accuracy,
    held-out handwriting, pictures that are no digits. Plain JSON values, read as data."""
    card = SHIPPED_MODEL.with_suffix(".json")
    try:
        return json.loads(card.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"the shipped model's card {card} cannot be read ({getattr(err, 'strerror', None) or err}): reinstall "
            "mnist-lightning, or pass --ckpt with a checkpoint of your own"
        ) from None


def shipped_summary() -> str:
    """One line naming the shipped model and its measured accuracy, for the commands and the page."""
    card = shipped_card()
    return (
        f"the CNN shipped with mnist-lightning ({card['config']}: {card['mnist_test_accuracy']:.2%} on MNIST's test "
        f"digits, {card['handwriting']['accuracy']:.1%} on handwriting in hands it never saw)"
    )


def predict_image(image: ImageInput, model: LitClassifier) -> int:
    """The label of one image: the tutorials' ``predict_image(img, model)``."""
    return int(predict_images(model, [image]).labels[0])


def classify(ckpt: str | os.PathLike, paths: Sequence[str | os.PathLike]) -> list[dict]:
    """One row per image file of ``paths`` (folders read recursively): ``file``, ``label`` and ``probability``
    (and a ``note`` when not sure, or not like a digit at all), or ``error`` for a file that cannot be read as a
    digit, so that one bad file does not stop the others."""
    model = load_model(ckpt)
    rows, digits = [], []
    for path in image_files(paths):
        try:
            digits.append((len(rows), preprocess(path)))
            rows.append({"file": str(path)})
        except ImageError as err:
            rows.append({"file": str(path), "error": str(err).removeprefix(f"{path}: ")})
    if digits:
        p = predict_digits(model, torch.stack([digit for _, digit in digits]))
        verdicts = zip(p.labels, p.probabilities, p.unsure, p.not_a_digit, p.runner_up, strict=True)
        for (row, _), (label, probs, unsure, not_a_digit, runner_up) in zip(digits, verdicts, strict=True):
            rows[row].update(label=int(label), probability=round(float(probs[label]), 4))
            if not_a_digit:
                rows[row]["note"] = "does not look like a digit"
            elif unsure:
                rows[row]["note"] = f"not sure: {int(label)} or {int(runner_up)}"
    return rows


def image_files(paths: Sequence[str | os.PathLike]) -> Iterator[Path]:
    """Files as given; folders as the image files inside them (recursively, sorted).

    A broken symbolic link with an image's name is yielded too, so that it is reported rather than skipped.
    """
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and _file_or_link(p))
        else:
            yield path


def _file_or_link(path: Path) -> bool:
    return path.is_file() or (path.is_symlink() and not path.exists())
