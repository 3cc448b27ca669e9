"""Reading images and making them MNIST-like: decoding, errors, the pixel limit, preprocessing. (On the real test
digits and the worst shapes: ``tests/system/``.)"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from drawing import draw_digit
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont, ImageOps

import mnist_lightning
from mnist_lightning.images import ImageError
from mnist_lightning.preprocessing import MNIST_BOX, WORK_SIDE, preprocess, thicken_kernel, work_size


def test_preprocess_makes_mnist_like_digits() -> None:
    digit = preprocess(draw_digit(7))
    assert digit.shape == (1, 28, 28)
    assert digit.min() == 0.0
    assert digit.max() > 0.95
    rows, cols = torch.nonzero(digit[0] > 0.2, as_tuple=True)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21, "fits the 20x20 box"
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    center = ((digit[0] * ys).sum() / digit.sum(), (digit[0] * xs).sum() / digit.sum())
    assert all(abs(c - 13.5) <= 1.0 for c in center), "centred on its centre of mass"


@pytest.mark.parametrize(
    "variant",
    [
        {"size": 40, "canvas": (60, 70), "at": (5, 5)},
        {"size": 200, "canvas": (400, 300), "at": (150, 20)},
        {"paper": "black", "ink": "white"},
        {"paper": "#e8dcb0", "ink": "#1a2a9a"},
        {"mode": "L"},
        {"mode": "RGBA"},
        {"mode": "P"},
        {"mode": "CMYK"},
    ],
    ids=["small", "large-offset", "inverted", "coloured", "gray", "rgba", "palette", "cmyk"],
)
def test_size_position_colour_and_mode_do_not_change_the_digit(variant: dict) -> None:
    reference = preprocess(draw_digit(3))
    digit = preprocess(draw_digit(3, **variant))
    assert torch.nn.functional.cosine_similarity(digit.flatten(), reference.flatten(), dim=0) > 0.9


def test_transparent_background_is_paper() -> None:
    image = Image.new("RGBA", (100, 120), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((20, 5), "4", fill=(0, 0, 0, 255), font=ImageFont.load_default(size=90))
    reference = preprocess(draw_digit(4, size=90, canvas=(100, 120), at=(20, 5)))
    assert torch.nn.functional.cosine_similarity(preprocess(image).flatten(), reference.flatten(), dim=0) > 0.95


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.ones(30, 30), "blank"),
        (torch.full((5, 5), 2.0), "in \\[0, 1\\]"),
        (torch.zeros(2, 7, 4, 5), "expected a tensor"),
        (torch.zeros(2, 3, 4, 5), "a batch of 2 images"),
        (np.zeros((5, 28, 28), dtype=np.uint8), "a numpy array is one image"),
        (torch.zeros(4001, 4000, dtype=torch.uint8), "4000x4001 is too large \\(at most 16,000,000 pixels\\)"),
        ("no/such/file.png", "no such file"),
        (".", "is a folder"),
    ],
)
def test_bad_images_get_a_clear_error(bad, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        preprocess(bad)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def test_preprocessing_twice_changes_nothing() -> None:
    once = preprocess(draw_digit(2, size=90))
    assert torch.allclose(preprocess(once), once, atol=1 / 255)


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    upright = draw_digit(7, canvas=(160, 200))
    stored = upright.rotate(90, expand=True)  # how a phone stores a photo taken sideways...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...and its orientation tag: turn 90 degrees clockwise to view
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    reference = preprocess(upright)
    assert cosine(preprocess(tmp_path / "phone.jpg"), reference) > 0.9
    assert cosine(preprocess(stored), reference) < 0.8, "the test digit looks different on its side"


@pytest.mark.parametrize("ink", [(255, 255, 255, 255), (0, 0, 0, 255), (200, 30, 30, 255)])
def test_any_ink_on_a_transparent_background_is_a_digit(ink: tuple[int, ...]) -> None:
    image = Image.new("RGBA", (100, 120), (0, 0, 0, 0) if ink[0] > 128 else (255, 255, 255, 0))
    ImageDraw.Draw(image).text((20, 5), "4", fill=ink, font=ImageFont.load_default(size=90))
    reference = preprocess(draw_digit(4, size=90, canvas=(100, 120), at=(20, 5)))
    assert cosine(preprocess(image), reference) > 0.95


@pytest.mark.parametrize("ink", [(255, 255, 255, 255), (20, 40, 200, 255)])
def test_a_large_transparent_image_is_reduced_as_its_composite_would_be(ink: tuple[int, ...]) -> None:
    """Reduced in 8-bit grey before any float copy (a full-size one costs hundreds of MB), and yet the same pixels
    as the full-size composite box-averaged: no hidden colour mixes in."""
    from mnist_lightning.images import _array_channels, _gray, read_image

    image = Image.new("RGBA", (2100, 2100), (200, 10, 10, 0) if ink[0] < 128 else (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(400, 400), (1700, 1700), (1700, 500)], fill=ink, width=90)
    reduced = read_image(image, WORK_SIDE)
    full = _gray(_array_channels(np.asarray(image)))
    factor = 2100 // WORK_SIDE
    expected = torch.nn.functional.avg_pool2d(full[None, None], factor)[0, 0]
    assert reduced.shape == expected.shape
    assert float((reduced - expected).abs().max()) < 0.005


def test_a_large_noisy_unevenly_lit_photo_becomes_the_clean_digit() -> None:
    generator = torch.Generator().manual_seed(0)
    clean = draw_digit(5, size=500, canvas=(900, 800), at=(250, 80), mode="L")
    pixels = torch.from_numpy(np.asarray(clean, dtype=np.float32) / 255)
    light = torch.linspace(0.7, 1.0, 900)[None]  # lit from the right
    photo = (pixels * light + 0.03 * torch.randn(pixels.shape, generator=generator)).clamp(0, 1)
    buffer = io.BytesIO()
    Image.fromarray((photo * 255).byte().numpy()).save(buffer, format="JPEG", quality=60)
    assert cosine(preprocess(Image.open(buffer)), preprocess(clean)) > 0.9


def test_a_jpeg_scan_on_flat_paper_is_cropped_to_its_strokes_not_its_compression_halo() -> None:
    scan = Image.new("L", (112, 112), 255)
    ImageDraw.Draw(scan).line([(30, 16), (80, 16), (48, 96)], fill=40, width=9)
    buffer = io.BytesIO()
    scan.save(buffer, format="JPEG", quality=30)  # flat paper at the border, faint ringing beside the strokes
    assert cosine(preprocess(Image.open(buffer)), preprocess(scan)) > 0.97


def test_a_thin_pen_photographed_large_gets_mnist_strokes() -> None:
    def seven(pen: int) -> Image.Image:
        image = Image.new("L", (1000, 1000), 235)
        ImageDraw.Draw(image).line([(250, 150), (750, 150), (420, 850)], fill=20, width=pen)
        return image

    thin, mnist_wide = preprocess(seven(3)), preprocess(seven(70))  # 70 px at 1000 px: 2 px at 28x28
    assert 0.6 * mnist_wide.sum() < thin.sum() < 1.6 * mnist_wide.sum(), "not a hair, not a blob"


@settings(max_examples=150, deadline=None)
@given(data=st.binary(min_size=0, max_size=3000))
def test_random_bytes_as_an_image_file_give_only_clear_errors(data: bytes, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "random.png"
    path.write_bytes(data)
    try:
        digit = preprocess(path)
    except ImageError as err:
        message = str(err)
    else:
        message = "ok"
        assert digit.shape == (1, 28, 28)
    assert message


@settings(max_examples=60, deadline=None)
@given(pixels=st.lists(st.integers(0, 255), min_size=16, max_size=400), width=st.integers(1, 20))
def test_random_pixels_never_crash(pixels: list[int], width: int) -> None:
    height = len(pixels) // width
    if height == 0:
        return
    image = torch.tensor(pixels[: width * height], dtype=torch.uint8).reshape(height, width)
    with contextlib.suppress(ImageError):
        assert preprocess(image).shape == (1, 28, 28)


def test_the_package_face_gives_the_preprocess_function() -> None:
    assert mnist_lightning.preprocess is preprocess


# --- ink wherever it is: no border is assumed to be paper --------------------------------------------------------


def grainy(pixels: np.ndarray, seed: int = 0, sigma: float = 0.05, quality: int | None = None) -> Image.Image:
    """``pixels`` (floats, paper light) with photo grain, optionally JPEG-compressed."""
    noisy = pixels + np.random.default_rng(seed).normal(0, sigma, pixels.shape)
    image = Image.fromarray((np.clip(noisy, 0, 1) * 255).astype(np.uint8))
    if quality is None:
        return image
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(buffer)


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (100, 100), 200),
        grainy(np.full((300, 300), 0.7)),
        grainy(np.full((300, 300), 0.7), seed=1, quality=60),
        grainy(np.full((600, 800), 0.5), seed=2, sigma=0.1),
    ],
    ids=["uniform", "noise", "noise-jpeg", "strong-noise"],
)
def test_an_image_without_ink_is_blank(image: Image.Image) -> None:
    with pytest.raises(ImageError, match="blank"):
        preprocess(image)


def tight_crop(image: Image.Image) -> Image.Image:
    """``image`` (dark ink on white) cropped to its ink: every edge touches a stroke."""
    return image.crop(ImageOps.invert(image).getbbox())


@pytest.mark.parametrize("digit", range(10))
def test_a_tightly_cropped_digit_touching_every_edge_is_read(digit: int) -> None:
    image = tight_crop(draw_digit(digit, mode="L"))
    pixels = np.asarray(image)
    assert all((edge < 255).any() for edge in (pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]))
    assert cosine(preprocess(image), preprocess(draw_digit(digit))) > 0.99


def test_a_12_px_digit_upscaled_is_read() -> None:
    similarity = []
    for digit in range(10):
        tight = tight_crop(draw_digit(digit, mode="L"))
        scale = 12 / max(tight.size)
        size = (max(1, round(tight.width * scale)), max(1, round(tight.height * scale)))
        small = tight.resize(size, Image.Resampling.LANCZOS)
        blurry = small.resize((small.width * 8, small.height * 8), Image.Resampling.BICUBIC)
        similarity.append(cosine(preprocess(blurry), preprocess(draw_digit(digit))))
    assert min(similarity) > 0.65, similarity
    assert sum(similarity) / 10 > 0.85, similarity


def four(pen: int, side: int = 400) -> np.ndarray:
    """A "4" drawn with a ``pen`` px line on a ``side`` px square: ink 1, paper 0."""
    image = Image.new("L", (side, side), 0)
    draw, s = ImageDraw.Draw(image), side / 400
    draw.line([(250 * s, 60 * s), (90 * s, 260 * s), (300 * s, 260 * s)], fill=255, width=pen)
    draw.line([(250 * s, 60 * s), (250 * s, 340 * s)], fill=255, width=pen)
    return np.asarray(image, dtype=np.float32) / 255


@pytest.mark.parametrize("seed", range(3))
def test_a_thin_pen_on_grainy_unevenly_lit_paper_is_the_digit_not_a_block(seed: int) -> None:
    ink = four(pen=2)
    ys, xs = np.mgrid[0:400, 0:400] / 400
    paper = 0.55 + 0.35 * xs + 0.1 * ys  # lit from the right and from below
    photo = grainy(paper * (1 - ink) + 0.15 * ink, seed=seed, sigma=0.06)
    digit = preprocess(photo)
    assert (digit > 0.5).sum() < 200, "a solid 20x20 block has 400 pixels of ink"
    assert cosine(digit, preprocess(1 - torch.from_numpy(four(pen=24)))) > 0.85


# --- bounded cost ------------------------------------------------------------------------------------------------


def test_no_kernel_or_working_image_grows_with_the_image() -> None:
    for height, width in [(1, 10_000), (10_000, 1), (16_000, 1_000), (4_000, 4_000), (1, 1), (3, 3)]:
        assert max(work_size(height, width, WORK_SIDE)) <= WORK_SIDE
        assert min(work_size(height, width, WORK_SIDE)) >= 1
    widest = max(thicken_kernel(width, side) for width in (0.0, 0.001, 0.5, 0.99) for side in (1, 20, 80, 10**6))
    assert widest <= 2 * WORK_SIDE // MNIST_BOX + 1


def test_a_float_image_holding_nan_or_infinity_is_an_image_error(tmp_path: Path) -> None:
    for value in (float("nan"), float("inf")):
        pixels = np.zeros((40, 40), dtype=np.float32)
        pixels[10:30, 18:22] = 1.0
        pixels[0, 0] = value
        Image.fromarray(pixels, mode="F").save(tmp_path / "float.tiff")
        with pytest.raises(ImageError, match="NaN or infinite"):
            preprocess(tmp_path / "float.tiff")
    pixels[0, 0] = 0.0
    Image.fromarray(pixels, mode="F").save(tmp_path / "float.tiff")
    assert preprocess(tmp_path / "float.tiff").shape == (1, 28, 28), "a finite float TIFF is read"
