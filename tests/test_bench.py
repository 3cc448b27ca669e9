"""The robustness benchmark's transforms give inputs the predict path reads as the digit they came from."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

import mnist_lightning.models
from mnist_lightning import LitLogReg
from mnist_lightning.preprocess import preprocess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import cnn as cnn_bench
import ensemble as ensemble_bench
import pool_relu
import robustness


def typed_digits() -> torch.Tensor:
    """Ten MNIST-like ``(1, 28, 28)`` digits: PIL's font, preprocessed like MNIST."""
    digits = []
    for digit in range(10):
        image = Image.new("L", (120, 150), 0)
        ImageDraw.Draw(image).text((20, 5), str(digit), fill=255, font=ImageFont.load_default(size=120))
        digits.append(preprocess(image))
    return torch.stack(digits)


@pytest.mark.unit
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


@pytest.mark.unit
def test_the_report_has_a_row_per_transform_and_the_worst_per_model() -> None:
    correct = {name: {"A": 90, "B": 100} for name in robustness.TRANSFORMS}
    correct["blurred"]["A"] = 50
    text = robustness.report(correct, {"A": "a.ckpt", "B": "b.ckpt"}, 100, "python bench/robustness.py")
    assert text.startswith("## Robustness")
    assert "| **worst** | | **50.00%** | **100.00%** |" in text
    assert all(f"| {name} |" in text for name in robustness.TRANSFORMS)


@pytest.mark.unit
def test_a_refused_input_counts_as_wrong_for_every_model_and_is_reported() -> None:
    digit = torch.zeros(1, 1, 28, 28)
    digit[..., 6:22, 12:16] = 1.0  # a "1"
    blank = torch.zeros(1, 1, 28, 28)
    models = {"A": LitLogReg(), "B": LitLogReg()}
    with patch.dict(robustness.TRANSFORMS, dict.fromkeys(robustness.TRANSFORMS, robustness.TRANSFORMS["clean"])):
        correct = robustness.evaluate(models, torch.cat([digit, blank]), torch.tensor([1, 0]), chunk=2)
    assert all(counts[robustness.REFUSED] == 1 for counts in correct.values())
    assert all(counts["A"] <= 1 and counts["B"] <= 1 for counts in correct.values()), "the blank one is never right"
    text = robustness.report(correct, {"A": "a.ckpt", "B": "b.ckpt"}, 2, "python bench/robustness.py")
    assert "(1 refused as blank)" in text


@pytest.mark.unit
def test_the_cnn_report_gives_every_seed_and_the_lowest_accuracy() -> None:
    default = [{"wall_s": 10.0, "train_s": 2.0, "test_acc": 0.925}]
    fits = [
        {"wall_s": 170.0 + seed, "train_s": 150.0, "test_acc": acc, "seed": seed}
        for seed, acc in ((1, 0.9951), (2, 0.9957), (3, 0.9949))
    ]
    results = {"default": default, "fast.yaml": {"fit": fits, "plain": []}}
    text = cnn_bench.report(results, ["fast.yaml"], 2, "python bench/cnn.py --configs fast.yaml --seeds 1 2 3")
    assert text.startswith(cnn_bench.heading(["fast.yaml"]) + "\n")
    assert cnn_bench.heading(["fast.yaml"]) != cnn_bench.heading(["cnn.yaml"])
    assert "lowest 99.49%" in text
    assert "seed 1: 171 s, 99.51%, seed 2: 172 s, 99.57%, seed 3: 173 s, 99.49%" in text
    assert "| 17.20x |" in text
    assert cnn_bench.seed_args(3) == ["--seed_everything", "3", "--data.seed", "3"]


@pytest.mark.unit
def test_the_ensemble_report_counts_what_it_gains_and_loses_against_its_best_member() -> None:
    def row(name: str, right: list[int], seconds: float) -> dict:
        return {"name": name, "correct": torch.tensor(right, dtype=torch.bool), "ece": 0.01, "seconds": seconds}

    rows = [row("member 0", [1, 1, 0, 0], 0.1), row("member 1", [1, 1, 1, 0], 0.2), row("ensemble", [1, 0, 1, 1], 0.6)]
    text = ensemble_bench.report(rows, "python bench/ensemble.py --ckpt e.ckpt")
    assert "| **ensemble** | 75.00% | 1.00% | 0.600 |" in text
    assert "best member (member 1): 1 test digits right that it misses, 1 missed that it gets right" in text
    assert "costs 3.0x its time" in text


@pytest.mark.unit
def test_the_pooling_bench_compares_the_same_network_in_the_textbook_order() -> None:
    net = mnist_lightning.models.cnn_layers((4, 6), (3, 3), 8, 0.0, True, convs_per_block=2)
    textbook = pool_relu.textbook_order(net)
    names = [type(m).__name__ for m in textbook]
    assert names[:7] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert names != [type(m).__name__ for m in net]
    images, labels = torch.randn(3, 1, 28, 28), torch.tensor([1, 2, 3])
    assert pool_relu.same_results(net, textbook, images, labels)
    other = mnist_lightning.models.cnn_layers((4, 6), (3, 3), 8, 0.0, True, convs_per_block=2)
    assert not pool_relu.same_results(net, other, images, labels)


def test_the_pooling_bench_writes_its_section(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    out.write_text("# Results\n\n## Other\n\nkept\n")
    with patch.object(sys, "argv", ["pool_relu.py", "--repeats", "1", "--steps", "1", "--out", str(out)]):
        pool_relu.main()
    text = out.read_text()
    assert "## Other\n\nkept" in text
    assert text.count("| `cnn") == 3
    assert "## CNN layers: pooling before the last ReLU against the textbook order" in text
