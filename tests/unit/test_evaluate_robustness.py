"""The robustness suite's transforms give inputs the predict path reads as the digit they came from, and its
table and the fidelity table give every row and each model's worst."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from mnist_lightning.evaluate import fidelity, robustness
from mnist_lightning.evaluate.report import percent, table
from mnist_lightning.preprocessing import preprocess


def typed_digits() -> torch.Tensor:
    """Ten MNIST-like ``(1, 28, 28)`` digits: PIL's font, preprocessed like MNIST."""
    digits = []
    for digit in range(10):
        image = Image.new("L", (120, 150), 0)
        ImageDraw.Draw(image).text((20, 5), str(digit), fill=255, font=ImageFont.load_default(size=120))
        digits.append(preprocess(image))
    return torch.stack(digits)


@pytest.mark.parametrize("name", list(robustness.TRANSFORMS))
def test_every_transform_keeps_the_digit_recognisable_through_preprocessing(name: str) -> None:
    digits = typed_digits()
    _, transform = robustness.TRANSFORMS[name]
    inputs = transform(digits, torch.Generator().manual_seed(0))
    assert len(inputs) == len(digits)
    back = torch.stack([preprocess(image) for image in inputs])
    similarity = torch.nn.functional.cosine_similarity(back.flatten(1), digits.flatten(1), dim=1)
    assert similarity.min() > (0.99 if name in ("clean", "off-centre") else 0.3), similarity
    if name in ("ink-on-paper-jpeg", "larger"):  # scaled down from 4x and 6x: no JPEG halo or faint edge widens the box
        assert similarity.mean() > 0.9, similarity


def test_the_table_has_a_row_per_transform_the_refusals_and_the_worst_per_model() -> None:
    correct = {name: {"A": 90, "B": 100, robustness.REFUSED: 0} for name in robustness.TRANSFORMS}
    correct["blurred"]["A"] = 50
    correct["photographed"][robustness.REFUSED] = 3
    result = robustness.result(correct, ["A", "B"], 100)
    assert result["models"]["A"]["worst_transform"] == {"name": "blurred", "accuracy": 0.5}
    assert result["transforms"]["photographed"]["refused"] == 3
    text = robustness.tables(result, markdown=True)
    assert "| **worst** |  | 50.00% (blurred) | 100.00% (clean) |" in text
    assert all(f"| {name} | " in text for name in robustness.TRANSFORMS)
    assert "(3 refused as blank) | 90.00% | 100.00% |" in text


def test_the_fidelity_table_puts_each_path_beside_the_model_on_the_same_digits() -> None:
    figures = dict.fromkeys(
        ["test_pixels", "predict_images", "png_files", "png_files_model", "typed", "photos_thin_pen", "photos_model"],
        0.9,
    )
    result = {
        "images": 300,
        "pixel_identical": 0.5,
        "mean_change": 0.01,
        "counts": {"png_files": 10, "typed": 200, "photos": 6},
        "models": {"A": {**figures, "photos": 0.5}, "B": {**figures, "photos": 0.75}},
    }
    text = fidelity.tables(result)
    assert text.startswith("the preprocessing on MNIST's test digits: 50.00% pixel-identical, mean |change| 0.01000")
    assert "90.00% (90.00%)" in text
    assert "50.00% / 90.00% (90.00%)" in text
    assert text.splitlines()[-1].split() == ["worst", "on", "photos", "50.00%"]


def test_typed_digits_are_seeded_and_labelled() -> None:
    images, truth = fidelity.typed_digits(count_per_digit=2)
    again, _ = fidelity.typed_digits(count_per_digit=2)
    assert truth.tolist() == [d for d in range(10) for _ in range(2)]
    assert [i.tobytes() for i in images] == [i.tobytes() for i in again]


def test_tables_align_for_a_terminal_and_say_when_nothing_was_measured() -> None:
    assert table(["a", "long"], [["xyz", "1"]]).splitlines() == ["a    long", "xyz  1"]
    assert table(["a"], [["1"]], markdown=True).splitlines() == ["| a |", "| --- |", "| 1 |"]
    assert percent(float("nan")) == "n/a"
