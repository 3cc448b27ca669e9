"""Making an image of a digit MNIST-like: MNIST-style preprocessing of what :mod:`mnist_lightning.images` reads.

Images are made the way MNIST's digits were made (grayscale, white digit on black, fitted into 20x20 keeping
its aspect ratio, placed on 28x28 by its centre of mass), so closely that an MNIST digit passes through
unchanged while photos and scans of any size, position, stroke width and colour become MNIST-like. The
model standardizes those pixels itself (see :mod:`mnist_lightning.inference`). What cannot be read as a digit
is an :class:`~mnist_lightning.images.ImageError`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from mnist_lightning.images import ImageError, ImageInput, image_list, read_image

MNIST_BOX = 20
"""MNIST scaled every digit to fit a 20x20 box (its long side is 20 pixels in 9,997 of the 10,000 test digits)."""
MNIST_CENTER = 14.0
"""The pixel (row and column, from 0) that MNIST put each digit's centre of mass on, to the nearest pixel."""
MNIST_STROKE, MIN_STROKE = 2.0, 1.0
"""MNIST's median stroke width in pixels (see ``_stroke_width``), and the width below which strokes are widened."""
MEASURE_SIDE = 4 * MNIST_BOX
"""Stroke widths are measured on the digit shrunk to this long side at most (smooths a photo's ragged edges)."""
NOISE_LEVELS = 5.0
"""Ink must stand this many standard deviations of the paper's noise above the background."""
ROUNDING = 1e-5
"""Residuals this small are the fitted plane's float rounding on flat paper, not ink (the box would be the page)."""
QUIET = 0.5 / 255
"""Noise below half a grey level is no noise: the background is clean (MNIST's, a drawing's, a flat scan's)."""
BLOCKS = 8
"""The background plane is fitted to the medians of an up to 8x8 grid of blocks over the image."""
PAPER_BLOCKS = 0.25
"""...to the quarter of them lying lowest against it: a tight crop of a thick digit has ink in half its blocks."""
TIE = 0.1
"""Less than this away from half of the pixels on the light side is no clear majority for the paper; a border
with less than this share of light pixels is dark paper."""
EXTREMES = torch.tensor([0.001, 0.999])
"""The image's extremes: quantiles past the paper's lone noisy pixels, and short of a thin pen's share of a page."""
WORK_SIDE = 512
"""Images are averaged down to this long side first: plenty for a 20x20 digit, and a bounded cost for every step
after decoding. No widening kernel exceeds ``2 * WORK_SIDE / MNIST_BOX + 1`` pixels."""
NOISY_INK = 0.2
"""On a noisy background, the share of full ink strength that counts towards the digit's bounding box."""
HIGH_RES = 2 * MNIST_BOX
"""Digits longer than this are scaled down at least 2x: faint ink away from their strokes is compression halo."""
HALO_SHARE = 0.1
"""On a clean background, when more than this share of the ink is faint and away from every stroke, it is a halo
(a blur's) and not part of the digit's box. MNIST's own digits have far less (a few faint specks), so they still
come back unchanged."""
MIN_CONTRAST = 2 / 255
"""Less ink above the noise floor than this is a blank image."""


def preprocess(image: ImageInput) -> torch.Tensor:
    """One image of a digit as MNIST would have it: ``(1, 28, 28)``, white on black, pixels in [0, 1].

    Made the way MNIST was made, so that an MNIST digit comes back unchanged: the ink is separated from the
    background, cropped to its extent, scaled to fit 20x20 (keeping its aspect ratio; a digit that already
    spans 20 pixels is not resampled) and shifted by whole pixels so that its centre of mass lands on
    pixel (14, 14). Strokes much thinner than MNIST's (a pen photographed large) are thickened first. Large
    images are shrunk to ``WORK_SIDE`` first, so the cost is bounded and linear in the pixels read.

    >>> canvas = torch.ones(100, 60)           # white paper
    >>> canvas[20:80, 25:35] = 0.0             # a black stroke: a "1"
    >>> digit = preprocess(canvas)
    >>> digit.shape, round(digit.max().item(), 2), round(digit[0, :, :4].max().item(), 2)
    (torch.Size([1, 28, 28]), 1.0, 0.0)
    """
    digit = _crop(*_ink(_shrink(read_image(image, WORK_SIDE), WORK_SIDE)))
    digit = _fit(_thicken(digit))
    return _center_by_mass(digit)


def work_size(height: int, width: int, side: int) -> tuple[int, int]:
    """The size an image is shrunk to so that its long side is at most ``side`` (kept when it already is).

    >>> work_size(10_000, 1, 512), work_size(16_000, 1_000, 512), work_size(28, 28, 512)
    ((512, 1), (512, 32), (28, 28))
    """
    scale = side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def _shrink(pixels: torch.Tensor, side: int) -> torch.Tensor:
    """Average ``pixels`` down to a long side of at most ``side``: every step after this costs a bounded time.

    Area averaging keeps a thin stroke as a fainter one, and averages a photo's grain away.
    """
    size = work_size(*pixels.shape, side)
    if size == tuple(pixels.shape):
        return pixels
    return F.adaptive_avg_pool2d(pixels[None, None], size)[0, 0]


def _ink(pixels: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The ink as white on black in [0, 1], the background at 0; and whether the background is noisy.

    Nothing is assumed about the border (a tight crop has ink on every edge): the paper is the majority of the
    pixels (see ``_dark_ink``); the background is a plane (light falling unevenly across a photo) fitted to the
    blocks of the image that are mostly paper; the noise is measured on the paper's side of that plane, and what
    it could explain (grain, JPEG artefacts) is cut off. A clean background (MNIST's) has no noise, so nothing
    of a faint stroke is lost there.
    """
    if _dark_ink(pixels):
        pixels = 1.0 - pixels
    residual = pixels - _background_plane(pixels)
    paper_side = -residual[residual <= 0]
    noise = 1.4826 * paper_side.median() if paper_side.numel() else residual.new_tensor(0.0)  # a robust std
    floor, peak = max(NOISE_LEVELS * noise.item(), ROUNDING), residual.max()
    if peak <= floor + MIN_CONTRAST:
        raise ImageError("the image is blank: no digit found")
    return ((residual - floor) / (peak - floor)).clamp(0, 1), bool(noise > QUIET)


def _dark_ink(pixels: torch.Tensor) -> bool:
    """Whether the ink is darker than the paper: the paper is the majority of the pixels on either side of the
    midpoint between the image's extremes (see ``EXTREMES``). Where neither side has a clear majority (a thick
    digit cropped tightly) the ink is dark, as a pen's on paper is, unless the border is nearly all dark (MNIST's
    own thick digits have a black margin)."""
    low, high = torch.quantile(pixels.flatten(), EXTREMES)
    middle = (low + high) / 2
    light = (pixels > middle).float().mean()
    if abs(light - 0.5) > TIE:
        return bool(light > 0.5)
    border = torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return bool((border > middle).float().mean() >= TIE)


def _blocks(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The median of each block of a grid of at most ``BLOCKS`` x ``BLOCKS`` equal blocks over the middle of the
    image (up to ``BLOCKS - 1`` rows and columns at its edges are left out), with the block centres' coordinates
    (the image spans -0.5 to 0.5). A side shorter than ``2 * BLOCKS`` pixels is one block a pixel: the rows and
    columns left out would be much of a small image's paper."""
    height, width = pixels.shape
    rows = BLOCKS if height >= 2 * BLOCKS else height
    cols = BLOCKS if width >= 2 * BLOCKS else width
    block_h, block_w = height // rows, width // cols
    top, left = (height - rows * block_h) // 2, (width - cols * block_w) // 2
    region = pixels[top : top + rows * block_h, left : left + cols * block_w]
    blocks = region.reshape(rows, block_h, cols, block_w).transpose(1, 2).reshape(rows * cols, -1)
    ys = (top + (torch.arange(rows) + 0.5) * block_h) / height - 0.5
    xs = (left + (torch.arange(cols) + 0.5) * block_w) / width - 0.5
    return blocks.median(dim=1).values, ys.repeat_interleave(cols), xs.repeat(rows)


def _background_plane(pixels: torch.Tensor) -> torch.Tensor:
    """A plane fitted to the image's paper: the paper's brightness, lit from one side or not.

    Fitted by least squares to the blocks' medians, then again and again to the ``PAPER_BLOCKS`` share of them
    that lie lowest against the last fit (ink is bright here, so those are mostly paper) until it settles.
    """
    values, ys, xs = _blocks(pixels)
    design = torch.stack([torch.ones_like(ys), ys, xs], dim=1)
    keep = torch.ones_like(values, dtype=torch.bool)
    for _ in range(10):
        coef = torch.linalg.lstsq(design[keep], values[keep, None]).solution[:, 0]
        errors = values - design @ coef
        kept, keep = keep, errors <= errors.quantile(PAPER_BLOCKS)
        if torch.equal(kept, keep):
            break
    height, width = pixels.shape
    grid_y = (torch.arange(height, dtype=torch.float32) + 0.5) / height - 0.5
    grid_x = (torch.arange(width, dtype=torch.float32) + 0.5) / width - 0.5
    return coef[0] + coef[1] * grid_y[:, None] + coef[2] * grid_x[None]


def _crop(ink: torch.Tensor, noisy: bool) -> torch.Tensor:
    """The ink's bounding box: on a clean background every pixel with any ink, so that faint anti-aliased edges
    are kept. On a noisy one (a photo) only ink above ``NOISY_INK`` counts, and only where at least three
    pixels of its 3x3 neighbourhood are ink (a stroke one pixel wide has three): the isolated specks that noise,
    JPEG ringing and dust leave above the floor would otherwise widen the box. No such ink is a blank image.

    A flat background can still hide JPEG ringing: compression flattens the paper, where the noise is measured,
    but leaves a faint halo several pixels around every stroke. So in a digit more than ``HIGH_RES`` pixels long
    faint ink counts only next to ink above ``NOISY_INK``: a stroke's anti-aliased edge, not the halo around it.
    In a smaller one the same holds when the faint ink away from the strokes is more than ``HALO_SHARE`` of the
    ink (a blurred digit's halo).
    """
    mask = (ink > (NOISY_INK if noisy else 0)).float()[None, None]
    if noisy:
        neighbours = F.avg_pool2d(F.pad(mask, (1, 1, 1, 1)), 3, stride=1) * 9
        mask = mask * (neighbours >= 3 - 1e-4)
        if not mask.any():
            raise ImageError("the image is blank: no digit found, only specks of noise")
    else:
        near_strokes = mask * F.max_pool2d((ink > NOISY_INK).float()[None, None], 3, stride=1, padding=1)
        if max(_box(ink > 0)) > HIGH_RES or (mask - near_strokes).sum() > HALO_SHARE * mask.sum():
            mask = near_strokes
    rows, cols = torch.nonzero(mask[0, 0], as_tuple=True)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _box(mask: torch.Tensor) -> tuple[int, int]:
    """Height and width of the bounding box of the true pixels of ``mask`` (which has some)."""
    rows, cols = torch.nonzero(mask, as_tuple=True)
    return int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1


def _stroke_width(digit: torch.Tensor) -> float:
    """Mean stroke width in pixels at MNIST's size (long side 20): twice the inked area over its perimeter.

    Measured on the digit shrunk to at most four times that size, where a photo's ragged stroke edges have
    been smoothed out, counting ink above half the strongest.
    """
    digit = _shrink(digit, MEASURE_SIDE)
    mask = F.pad(digit > digit.max() / 2, (1, 1, 1, 1))
    area = mask.sum().item()
    perimeter = (mask[1:] != mask[:-1]).sum().item() + (mask[:, 1:] != mask[:, :-1]).sum().item()
    return 2 * area / max(perimeter, 1) * MNIST_BOX / max(mask.shape[0] - 2, mask.shape[1] - 2)


def thicken_kernel(width: float, side: int) -> int:
    """The side of the square maximum that widens strokes ``width`` px wide at MNIST's size to about
    ``MNIST_STROKE``, on a digit whose long side is ``side`` (1: no widening). At most
    ``2 * WORK_SIDE / MNIST_BOX + 1`` (52): a digit is never longer than ``WORK_SIDE`` when it is widened.

    >>> thicken_kernel(0.01, 10_000), thicken_kernel(0.5, 20), thicken_kernel(1.5, 20)
    (52, 3, 1)
    """
    if width >= MIN_STROKE:
        return 1
    grow = round((MNIST_STROKE - width) * min(side, WORK_SIDE) / MNIST_BOX)
    return max(grow, 0) + 1  # a k x k maximum widens a stroke by k - 1 pixels


def _thicken(digit: torch.Tensor) -> torch.Tensor:
    """Widen strokes that would be thinner than almost any MNIST digit's once the digit is fitted into 20x20.

    A 3 px pen on a digit photographed 700 px tall would shrink to a hair; MNIST's strokes are about 2 px
    wide at that size (about 1 in 200 MNIST digits falls below ``MIN_STROKE``). A digit longer than
    ``WORK_SIDE`` (only when called on its own: ``preprocess`` has shrunk the image already) is first shrunk to
    it by taking each block's strongest ink (a hair stays a whole line), so the kernel stays bounded.
    """
    kernel = thicken_kernel(_stroke_width(digit), max(digit.shape))
    if kernel == 1:
        return digit
    size = work_size(*digit.shape, WORK_SIDE)
    if size != tuple(digit.shape):
        digit = F.adaptive_max_pool2d(digit[None, None], size)[0, 0]
    grow = kernel - 1
    padded = F.pad(digit[None, None], (grow, grow, grow, grow))
    wide = F.max_pool2d(F.max_pool2d(padded, (1, kernel), stride=1), (kernel, 1), stride=1)
    return wide[0, 0]


def _fit(digit: torch.Tensor) -> torch.Tensor:
    """Scale to fit 20x20 keeping the aspect ratio (anti-aliased, as MNIST did); the strongest ink at 1."""
    height, width = digit.shape
    scale = MNIST_BOX / max(height, width)
    if scale != 1:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        digit = F.interpolate(digit[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)
        digit = digit[0, 0].clamp(0, 1)
    return digit / digit.max()


def _center_by_mass(digit: torch.Tensor, side: int = 28) -> torch.Tensor:
    """Place ``digit`` on a black canvas, shifted by whole pixels so that its centre of mass is nearest (14, 14).

    That is MNIST's convention: the official test digits' centres of mass all lie within half a pixel of it.
    """
    height, width = digit.shape
    total = digit.sum()
    center_y = (digit.sum(1) * torch.arange(height, dtype=torch.float32)).sum() / total
    center_x = (digit.sum(0) * torch.arange(width, dtype=torch.float32)).sum() / total
    top = min(max(round(MNIST_CENTER - center_y.item()), 0), side - height)
    left = min(max(round(MNIST_CENTER - center_x.item()), 0), side - width)
    canvas = torch.zeros(1, side, side)
    canvas[0, top : top + height, left : left + width] = digit
    return canvas


def preprocess_batch(images: ImageInput | Iterable[ImageInput]) -> torch.Tensor:
    """One image or many (see :func:`mnist_lightning.inference.predict_images` for the layouts), each
    preprocessed like MNIST: ``(N, 1, 28, 28)``."""
    return torch.stack([preprocess(image) for image in image_list(images)])
