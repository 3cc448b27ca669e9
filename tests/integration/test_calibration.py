"""Honest confidence: the temperature fitted on the validation split, stored in checkpoints, applied wherever
probabilities are shown, and "not sure" where the calibrated answer is weak."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from helpers import best_checkpoint
from PIL import Image, ImageDraw
from torchmetrics.functional.classification import multiclass_calibration_error

from mnist_lightning import load_model
from mnist_lightning.commands import predict
from mnist_lightning.commands.runner import run
from mnist_lightning.inference import UNSURE_BELOW, Predictions
from mnist_lightning.models.calibration import fit_temperature


def overconfident(count: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits twice as confident as their labels warrant (labels drawn from softmax(logits / 2))."""
    generator = torch.Generator().manual_seed(seed)
    logits = 6.0 * torch.randn(count, 10, generator=generator)
    labels = torch.multinomial((logits / 2).softmax(dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


def test_the_fitted_temperature_removes_most_of_the_calibration_error() -> None:
    logits, labels = overconfident()
    temperature = fit_temperature(logits, labels)
    assert 1.7 < temperature < 2.3
    before = multiclass_calibration_error(logits.softmax(dim=1), labels, num_classes=10)
    after = multiclass_calibration_error((logits / temperature).softmax(dim=1), labels, num_classes=10)
    assert after < before / 3


def test_ranks_that_sum_their_binned_counts_pick_the_temperature_of_the_whole_set() -> None:
    """Two threads play the ranks of a distributed run: unequal shares, the binned sums all-reduced."""
    logits, labels = overconfident()
    shares = [(logits[:1500], labels[:1500]), (logits[1500:], labels[1500:])]
    barrier, posted, picked = threading.Barrier(2, timeout=30), [torch.zeros(0)] * 2, [0.0, 0.0]

    def rank(index: int) -> None:
        def all_reduce(local: torch.Tensor) -> torch.Tensor:
            posted[index] = local
            barrier.wait()
            total = posted[0] + posted[1]
            barrier.wait()
            return total

        picked[index] = fit_temperature(*shares[index], all_reduce)

    threads = [threading.Thread(target=rank, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert picked[0] == picked[1] == pytest.approx(fit_temperature(logits, labels), rel=1e-9)


def test_unsure_means_a_top_probability_under_the_threshold_and_names_the_runner_up() -> None:
    probabilities = torch.tensor([[0.05, 0.9, 0.05] + [0.0] * 7, [0.0] * 4 + [0.55, 0.0, 0.0, 0.0, 0.0, 0.45]])
    predictions = Predictions(probabilities.argmax(dim=1), probabilities)
    assert predictions.unsure.tolist() == [False, True]
    assert predictions.runner_up.tolist()[1] == 9
    assert 0.5 < UNSURE_BELOW <= 0.9


def test_a_fit_stores_the_temperature_of_each_checkpoint_and_tests_report_calibration(
    shared_run: Path, synthetic_dir: Path, run_cli, capsys
) -> None:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    temperature = float(checkpoint["state_dict"]["temperature"])
    assert temperature != 1.0
    assert load_model(best_checkpoint(shared_run)).temperature.item() == temperature
    assert run_cli("test", "--ckpt_path", str(best_checkpoint(shared_run)), "--data.data_dir", str(synthetic_dir)) == 0
    assert "test/ece" in capsys.readouterr().out


def test_probabilities_everywhere_are_the_calibrated_ones(shared_run: Path, tmp_path: Path) -> None:
    model = load_model(best_checkpoint(shared_run))
    images = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        expected = (model(images) / model.temperature).softmax(dim=1)
        assert torch.allclose(model.probabilities(images), expected)
        model.temperature.fill_(1.0)
        assert not torch.allclose(model.probabilities(images), expected)


def test_a_checkpoint_from_before_calibration_loads_with_temperature_one(shared_run: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    del checkpoint["state_dict"]["temperature"]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    assert load_model(old).temperature.item() == 1.0


def hesitant_checkpoint(run: Path, folder: Path) -> Path:
    """The run's best checkpoint made to split every answer between 0 and 1 (no weights, two equal biases): under
    the "not sure" threshold, over the "not a digit" one."""
    checkpoint = torch.load(best_checkpoint(run), weights_only=True)
    for name, tensor in checkpoint["state_dict"].items():
        if name.startswith("linear."):
            tensor.zero_()
        if name == "linear.bias":
            tensor[:2] = 20.0
    path = folder / "hesitant.ckpt"
    torch.save(checkpoint, path)
    return path


def test_the_predict_command_says_not_sure_with_both_candidates(shared_run: Path, tmp_path: Path, capsys) -> None:
    image = Image.new("L", (100, 100), 255)
    ImageDraw.Draw(image).line([(50, 10), (50, 90)], fill=0, width=8)
    image.save(tmp_path / "one.png")
    assert run(predict.main, ["--ckpt", str(best_checkpoint(shared_run)), str(tmp_path / "one.png")]) == 0
    confident = capsys.readouterr().out
    assert run(predict.main, ["--ckpt", str(hesitant_checkpoint(shared_run, tmp_path)), str(tmp_path / "one.png")]) == 0
    hesitant = capsys.readouterr().out
    line = next(line for line in hesitant.splitlines() if "one.png" in line)
    label = int(line.split()[1])
    assert f"not sure: {label} or " in line
    assert "not sure" not in confident or confident != hesitant
