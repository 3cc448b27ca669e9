"""bench/logreg_transfer.py trains as its variants say: an untouched share of a batch is MNIST's, and the smooth
templates are still one linear map."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import REPO

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.evaluate.renderings import RENDERINGS

sys.path.insert(0, str(REPO / "bench"))  # the script under test is a benchmark, not part of the package
import logreg_transfer


@pytest.fixture(scope="module")
def data(synthetic_dir: Path) -> MNISTDataModule:
    module = MNISTDataModule(data_dir=synthetic_dir, download=False, val_size=200, batch_size=100)
    module.setup()
    return module


@pytest.fixture(scope="module")
def digits(data: MNISTDataModule) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stand-ins for the tuning fonts: the test digits, one rendering name each, one refused (label -1)."""
    images, labels = data.split("test")
    renderings = list(RENDERINGS)
    labels = labels.clone()
    labels[0] = -1
    return images, labels, [renderings[k % len(renderings)] for k in range(len(labels))]


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_a_variant_augments_its_share_of_the_batch_and_leaves_the_rest_as_drawn(share: float) -> None:
    images = torch.rand(400, 1, 28, 28)
    variant = replace(logreg_transfer.VARIANTS["blur"], share=share)
    batch = logreg_transfer.training_batch(variant, images, torch.Generator().manual_seed(0))
    untouched = (batch == images).flatten(1).all(1).float().mean().item()
    assert untouched == pytest.approx(1.0 - share, abs=0.08)
    assert logreg_transfer.training_batch(logreg_transfer.VARIANTS["default"], images, torch.Generator()) is images


def test_a_fit_reports_the_best_epoch_and_counts_refused_digits_wrong(data: MNISTDataModule, digits: tuple) -> None:
    result = logreg_transfer.fit(replace(logreg_transfer.VARIANTS["default"], epochs=2), data, digits)
    assert result["epoch"] in (0, 1)
    assert result["val_acc"] > 0.9
    assert 0.9 < result["tuning_acc"] < 1.0
    assert result["worst_rendering"][0] in RENDERINGS


def test_smooth_templates_are_a_blurred_linear_map() -> None:
    model = logreg_transfer.SmoothLogReg()
    model.sigma = 1.0
    with torch.no_grad():
        model.linear.weight.zero_()
        model.linear.bias.zero_()
        model.linear.weight[3, 14 * 28 + 14] = 1.0
    scores = model(torch.eye(784).view(784, 1, 28, 28))[:, 3].view(28, 28)
    assert scores.argmax().item() == 14 * 28 + 14
    assert 0 < scores[14, 15].item() < scores[14, 14].item()
    assert scores[0, 0].item() == pytest.approx(0.0, abs=1e-6)
