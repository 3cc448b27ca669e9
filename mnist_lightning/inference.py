"""Use a trained model in scripts: safe checkpoint loading and prediction.

Example::

    from mnist_lightning.inference import load_model, predict_images

    model = load_model("lightning_logs/version_0/checkpoints/last.ckpt")
    predict_images(model, ["my_digit.png", "another.jpg"]).labels   # tensor([7, 3])

Images are read and made MNIST-like by :mod:`mnist_lightning.preprocess`; the model standardizes those pixels
itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

import torch

from mnist_lightning.checkpoint import build_model, read_checkpoint
from mnist_lightning.models import ALLOWLIST, LitClassifier
from mnist_lightning.preprocess import ImageError, ImageInput, preprocess_batch

__all__ = ["ImageError", "Predictions", "load_model", "predict_digits", "predict_image", "predict_images"]
"""``ImageError`` is what :func:`predict_images` raises for an image it cannot read, so it is importable here too."""


UNSURE_BELOW = 0.8
"""A calibrated top probability under this is "not sure": such an answer is wrong about one time in five or
more, so the predict command and the page name the two likeliest digits instead of one."""


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
    def runner_up(self) -> torch.Tensor:
        """The second likeliest class of each image, shape ``(N,)``: with an unsure answer, the other candidate."""
        return self.probabilities.topk(2, dim=1).indices[:, 1]


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

    Every image is preprocessed like MNIST (:func:`mnist_lightning.preprocess.preprocess`); the model
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


def predict_image(image: ImageInput, model: LitClassifier) -> int:
    """The label of one image: the tutorials' ``predict_image(img, model)``."""
    return int(predict_images(model, [image]).labels[0])
