"""Reading an image of any kind as grayscale pixels: files, PIL images, arrays and tensors, under one pixel limit.

Whatever is given (a phone photo with its EXIF orientation, a transparent PNG, a 16-bit scan, a float tensor)
comes back as one float tensor ``(H, W)`` in [0, 1]; what cannot be read as an image is an :class:`ImageError`
naming why. :mod:`mnist_lightning.preprocessing` makes those pixels MNIST-like.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError

ImageInput = str | os.PathLike | Image.Image | torch.Tensor | np.ndarray
MAX_PIXELS = 16_000_000
"""The one limit on an image's size (width x height, read from its header before decoding), for files, PIL
images, arrays and the server alike: a 5 MB PNG can unpack to gigabytes."""
LUMA = torch.tensor([0.299, 0.587, 0.114])
"""ITU-R 601-2 luma, the weights PIL's grayscale conversion uses."""


class ImageError(ValueError):
    """An input cannot be read as an image of a digit; the message says why."""


def read_image(image: ImageInput, side: int) -> torch.Tensor:
    """One image as a float grayscale tensor ``(H, W)`` in [0, 1]; a large file or PIL image is reduced on the
    way to no less than ``side`` pixels on its long side (see :func:`_from_pil`).

    See :func:`mnist_lightning.inference.predict_images` for the input rules.
    """
    if isinstance(image, (str, os.PathLike)):
        return _from_pil(_open(Path(image)), side)
    if isinstance(image, Image.Image):
        return _from_pil(image, side)
    if isinstance(image, np.ndarray):
        return _gray(_array_channels(image))
    if isinstance(image, torch.Tensor):
        images = _split_batch(image)
        if len(images) != 1:
            raise ImageError(f"a batch of {len(images)} images: preprocess takes one (predict_images takes a batch)")
        return _gray(images[0])
    raise ImageError(f"expected a path, PIL image, tensor or array, got {type(image).__name__}")


def _split_batch(tensor: torch.Tensor) -> list[torch.Tensor]:
    """A tensor as its images ``(C, H, W)``: ``(H, W)`` is one image, ``(N, H, W)`` and ``(N, C, H, W)`` a batch."""
    if tensor.dim() == 2:
        return [tensor[None]]
    if tensor.dim() == 3:
        return list(tensor[:, None])
    if tensor.dim() == 4 and tensor.shape[1] in (1, 3, 4):
        return list(tensor)
    raise ImageError(
        f"expected a tensor (H, W), (N, H, W) or (N, C, H, W) with C = 1, 3 or 4, got shape {tuple(tensor.shape)}"
    )


def _array_channels(array: np.ndarray) -> torch.Tensor:
    """A numpy array as one image ``(C, H, W)``: arrays follow PIL's layout, ``(H, W)`` or ``(H, W, C)``."""
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4)):
        tensor = torch.from_numpy(np.array(array))  # a copy: PIL's arrays are read-only
        return tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)
    raise ImageError(
        f"a numpy array is one image, (H, W) or (H, W, C) with C = 1, 3 or 4 like np.asarray(a PIL image), got shape "
        f"{array.shape}; for a batch pass a list or torch.from_numpy(array) as (N, H, W)"
    )


def _gray(channels: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` pixels (uint8, or float in [0, 1]) as grayscale ``(H, W)``; see :func:`_flatten_alpha`."""
    if min(channels.shape[1:]) < 1:
        raise ImageError(f"the image is empty: {channels.shape[1]}x{channels.shape[2]} pixels")
    if channels.shape[1] * channels.shape[2] > MAX_PIXELS:
        raise ImageError(f"{channels.shape[2]}x{channels.shape[1]} is too large (at most {MAX_PIXELS:,} pixels)")
    if channels.dtype == torch.uint8:
        channels = channels.float() / 255
    else:
        channels = channels.float()
        if not torch.isfinite(channels).all() or channels.min() < 0 or channels.max() > 1:
            raise ImageError("float images must hold values in [0, 1] (or pass uint8 pixels in 0-255)")
    luma = channels[0] if len(channels) == 1 else torch.tensordot(LUMA, channels[:3], dims=1)
    return _flatten_alpha(luma, channels[3]) if len(channels) == 4 else luma


def _flatten_alpha(luma: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Put a transparent image on a backdrop that contrasts with what is drawn: black under light ink, white
    under dark ink. White ink on a transparent background is a digit, and so is black ink."""
    if alpha.sum() == 0:
        raise ImageError("the image is blank: every pixel is transparent")
    drawn = (alpha * luma).sum() / alpha.sum()
    backdrop = 0.0 if drawn > 0.5 else 1.0
    return alpha * luma + (1 - alpha) * backdrop


def _open(path: Path) -> Image.Image:
    if path.is_symlink() and not path.exists():
        raise ImageError(f"{path}: broken symbolic link (to {os.readlink(path)})")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder; pass the image files in it (the predict command reads folders)")
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


def _from_pil(image: Image.Image, side: int) -> torch.Tensor:
    """A PIL image upright (its EXIF orientation applied: phone photos) as grayscale ``(H, W)``.

    A large image is first reduced by PIL (box averaging by a whole factor, on 8-bit pixels: the cheapest part of
    shrinking it to ``side``, and what bounds the memory one decode takes).
    """
    if image.width * image.height > MAX_PIXELS:
        raise ImageError(f"{image.width}x{image.height} is too large (at most {MAX_PIXELS:,} pixels)")
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        if not np.isfinite(pixels).all():
            raise ImageError(
                "the image holds NaN or infinite pixel values: expected finite numbers; save it with real values"
            )
        span = pixels.max() - pixels.min()
        return torch.from_numpy(((pixels - pixels.min()) / span if span > 0 else pixels * 0).astype(np.float32))
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB" if image.mode != "L" else "L")
    factor = max(image.size) // side
    if factor >= 2 and has_alpha:
        return _reduced_with_alpha(image, factor)
    if factor >= 2:
        image = image.reduce(factor)
    return _gray(_array_channels(np.asarray(image)))


def _reduced_with_alpha(image: Image.Image, factor: int) -> torch.Tensor:
    """A large transparent image reduced in 8-bit grey before any float copy exists: its luma premultiplied by its
    alpha, and its alpha, each box-averaged (averages of premultiplied values are the averages of the composite,
    so no hidden colour mixes in), then put on its backdrop as :func:`_flatten_alpha` does. A full-size float copy
    of a 4000x4000 RGBA image would cost hundreds of MB per decode."""
    alpha = image.getchannel("A")
    premultiplied = ImageChops.multiply(image.convert("L"), alpha).reduce(factor)
    alpha = torch.from_numpy(np.asarray(alpha.reduce(factor), dtype=np.float32) / 255)
    luma_alpha = torch.from_numpy(np.asarray(premultiplied, dtype=np.float32) / 255)
    if alpha.sum() == 0:
        raise ImageError("the image is blank: every pixel is transparent")
    backdrop = 0.0 if luma_alpha.sum() / alpha.sum() > 0.5 else 1.0
    return luma_alpha + (1 - alpha) * backdrop


def image_list(images: ImageInput | Iterable[ImageInput]) -> list[ImageInput]:
    """One image or many as a list of images; a tensor batch is split into its images (see :func:`_split_batch`)."""
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
        return [images]
    if isinstance(images, torch.Tensor):
        return [_gray(channels) for channels in _split_batch(images)]
    if not isinstance(images, Iterable):
        raise ImageError(f"expected images (paths, PIL images, tensors or arrays), got {type(images).__name__}")
    images = list(images)
    if not images:
        raise ImageError("no images given: pass at least one path, PIL image, tensor or array")
    return images
