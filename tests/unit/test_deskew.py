"""Deskewing shears a slanted digit upright, leaves an upright one alone and survives blank images."""

from __future__ import annotations

import pytest
import torch

from mnist_lightning.models.deskew import MAX_SHEAR, deskew, skew


def stroke(slant: float, column: float = 14.0) -> torch.Tensor:
    """A two-pixel-wide vertical stroke over rows 6-21, shifted by ``slant`` pixels per row below row 14."""
    image = torch.zeros(1, 1, 28, 28)
    for row in range(6, 22):
        left = round(column + slant * (row - 14))
        image[0, 0, row, left : left + 2] = 1.0
    return image


def test_an_upright_digit_is_left_as_it_is() -> None:
    image = stroke(0.0)
    assert skew(image).abs().item() < 1e-6
    assert torch.allclose(deskew(image), image, atol=1e-4)


@pytest.mark.parametrize("slant", [0.5, -0.4])
def test_a_slanted_stroke_becomes_upright_and_keeps_its_ink_and_centre(slant: float) -> None:
    image = stroke(slant)
    assert skew(image).item() == pytest.approx(slant, abs=0.05)
    upright = deskew(image)
    assert skew(upright).abs().item() < 0.02
    assert upright.sum().item() == pytest.approx(image.sum().item(), rel=0.02)
    columns = torch.arange(28.0)
    centre = (image.sum(dim=2) * columns).sum() / image.sum()
    assert ((upright.sum(dim=2) * columns).sum() / upright.sum()).item() == pytest.approx(centre.item(), abs=0.1)


def test_a_batch_is_deskewed_image_by_image_and_blanks_stay_blank() -> None:
    batch = torch.cat([stroke(0.5), torch.zeros(1, 1, 28, 28), stroke(-0.4), torch.zeros(1, 1, 28, 28)])
    out = deskew(batch)
    assert torch.isfinite(out).all()
    assert out[1].abs().max().item() == 0.0
    assert out[3].abs().max().item() == 0.0
    assert torch.allclose(out[2], deskew(stroke(-0.4))[0], atol=1e-6)


def test_a_flat_stroke_asks_for_no_more_than_the_largest_shear() -> None:
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 14, 5:20] = 1.0
    image[0, 0, 15, 19] = 1.0
    assert skew(image).abs().item() > MAX_SHEAR
    assert torch.isfinite(deskew(image)).all()
