"""Use a trained model in scripts: safe checkpoint loading, MNIST-style preprocessing, prediction.

Example::

    from mnist_lightning.inference import load_model, predict_images

    model = load_model("lightning_logs/version_0/checkpoints/last.ckpt")
    predict_images(model, ["my_digit.png", "another.jpg"]).labels   # tensor([7, 3])

Images are turned into what MNIST itself looks like (how its digits were made): grayscale, white digit on
black, cropped to the digit, scaled to fit 20x20 keeping its aspect ratio, and placed on a 28x28 canvas so
that its centre of mass is in the middle. The model standardizes those pixels itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_lightning.checkpoints import build_model, read_checkpoint
from mnist_lightning.models import LitClassifier

ImageInput = str | os.PathLike | Image.Image | torch.Tensor | np.ndarray
MAX_PIXELS = 40_000_000
INK_THRESHOLD = 0.2


class ImageError(ValueError):
    """An input is not an image this module can read as a digit; the message says why."""


class Predictions(NamedTuple):
    labels: torch.Tensor
    """Predicted class of each image, shape ``(N,)``."""
    probabilities: torch.Tensor
    """Class probabilities of each image, shape ``(N, num_classes)``."""


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LitClassifier:
    """The model of a checkpoint written by this project, in eval mode, loaded with ``weights_only=True``.

    A checkpoint that carries pickled code is refused (and nothing in it is executed); hyperparameters are
    checked before the model is built. The model takes pixels in [0, 1]: ``load_model(path)(images)``.
    """
    return build_model(read_checkpoint(path)).to(map_location).eval()


def read_image(image: ImageInput) -> torch.Tensor:
    """Any supported input as a float grayscale tensor ``(H, W)`` in [0, 1]."""
    if isinstance(image, (str, os.PathLike)):
        return _from_pil(_open(Path(image)))
    if isinstance(image, Image.Image):
        return _from_pil(image)
    tensor = torch.from_numpy(np.array(image)) if isinstance(image, np.ndarray) else image
    if not isinstance(tensor, torch.Tensor):
        raise ImageError(f"expected a path, PIL image, tensor or array, got {type(image).__name__}")
    if tensor.dim() == 3 and tensor.shape[0] in (1, 3, 4):  # (C, H, W)
        tensor = tensor[:3].float().mean(0) if tensor.shape[0] >= 3 else tensor[0]
    elif tensor.dim() == 3 and tensor.shape[-1] in (1, 3, 4):  # (H, W, C)
        tensor = tensor[..., :3].float().mean(-1)
    if tensor.dim() != 2 or min(tensor.shape) < 1:
        raise ImageError(f"expected an image (H, W), (C, H, W) or (H, W, C), got shape {tuple(tensor.shape)}")
    if tensor.dtype == torch.uint8:
        return tensor.float() / 255
    tensor = tensor.float()
    if not torch.isfinite(tensor).all() or tensor.min() < 0 or tensor.max() > 1:
        raise ImageError("float images must hold values in [0, 1] (or pass uint8 pixels in 0-255)")
    return tensor


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(f"{path}: {image.width}x{image.height} is too large (at most {MAX_PIXELS:,} pixels)")
            image.load()
            return image.copy()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageError):
            raise
        raise ImageError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None


def _from_pil(image: Image.Image) -> torch.Tensor:
    if image.width * image.height > MAX_PIXELS:
        raise ImageError(f"{image.width}x{image.height} is too large (at most {MAX_PIXELS:,} pixels)")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = np.asarray(image, dtype=np.float32)
        span = pixels.max() - pixels.min()
        return torch.from_numpy((pixels - pixels.min()) / span if span > 0 else pixels * 0)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        canvas = Image.new("RGBA", image.size, "white")  # transparent background: paper
        image = Image.alpha_composite(canvas, image.convert("RGBA"))
    gray = ImageOps.grayscale(image.convert("RGB"))
    return torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255)


def preprocess(image: ImageInput) -> torch.Tensor:
    """An image of one digit as MNIST would have it: ``(1, 28, 28)``, white on black, pixels in [0, 1].

    >>> canvas = torch.ones(100, 60)           # white paper
    >>> canvas[20:80, 25:35] = 0.0             # a black stroke: a "1"
    >>> digit = preprocess(canvas)
    >>> digit.shape, round(digit.max().item(), 2), round(digit[0, :, :4].max().item(), 2)
    (torch.Size([1, 28, 28]), 1.0, 0.0)
    """
    pixels = read_image(image)
    border = torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.median() > 0.5:  # light paper, dark ink: MNIST digits are white on black
        pixels = 1.0 - pixels
    pixels = pixels - pixels.min()
    if pixels.max() <= 0:
        raise ImageError("the image is blank: no digit found")
    pixels = pixels / pixels.max()
    rows, cols = torch.nonzero(pixels > INK_THRESHOLD, as_tuple=True)
    if len(rows) == 0:
        raise ImageError("no digit found: the image has no contrast between ink and background")
    digit = pixels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = 20 / max(digit.shape)
    size = (max(1, round(digit.shape[0] * scale)), max(1, round(digit.shape[1] * scale)))
    digit = F.interpolate(digit[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    return _center_by_mass(digit.clamp(0, 1))


def _center_by_mass(digit: torch.Tensor, side: int = 28) -> torch.Tensor:
    """Place ``digit`` on a ``side`` x ``side`` black canvas with its centre of mass in the middle."""
    height, width = digit.shape
    total = digit.sum()
    ys, xs = torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32)
    center_y = (digit.sum(1) * ys).sum() / total
    center_x = (digit.sum(0) * xs).sum() / total
    top = round(side / 2 - 0.5 - center_y.item())
    left = round(side / 2 - 0.5 - center_x.item())
    top, left = min(max(top, 0), side - height), min(max(left, 0), side - width)
    canvas = torch.zeros(1, side, side)
    canvas[0, top : top + height, left : left + width] = digit
    return canvas


def _as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
        return [images]
    if isinstance(images, torch.Tensor):
        return [images] if images.dim() <= 2 or (images.dim() == 3 and images.shape[0] <= 4) else list(images)
    return list(images)


@torch.no_grad()
def predict_images(
    model: LitClassifier, images: ImageInput | Iterable[ImageInput], batch_size: int = 256
) -> Predictions:
    """Labels and class probabilities for one image or many (paths, PIL images, tensors or arrays).

    Every image is preprocessed like MNIST (:func:`preprocess`); the model standardizes the pixels itself.
    """
    digits = torch.stack([preprocess(image) for image in _as_list(images)])
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probabilities = torch.cat([model(chunk.to(device)).softmax(dim=1).cpu() for chunk in digits.split(batch_size)])
    model.train(was_training)
    return Predictions(probabilities.argmax(dim=1), probabilities)


def predict_image(image: ImageInput, model: LitClassifier) -> int:
    """The label of one image: the tutorials' ``predict_image(img, model)``."""
    return int(predict_images(model, [image]).labels[0])
