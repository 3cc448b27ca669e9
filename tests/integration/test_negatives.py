"""Pictures that are no digits in training (``--data.negatives``) and the outlier-exposure loss that teaches a
model to spread its probability over them, so that the answer becomes "does not look like a digit"."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.data import negatives as negatives_module
from mnist_lightning.data.negatives import KINDS, LETTERS, NEGATIVE_LABEL, draw_negative, letter_fonts, negative_images
from mnist_lightning.errors import ConfigError
from mnist_lightning.inference import NOT_A_DIGIT_BELOW, UNSURE_BELOW, Predictions
from mnist_lightning.models import LitCNN
from mnist_lightning.models.training_sums import TrainingSums


def test_negatives_are_mnist_like_and_the_same_for_the_same_seed() -> None:
    first, again, other = negative_images(12, seed=3), negative_images(12, seed=3), negative_images(12, seed=4)
    assert first.shape == (12, 1, 28, 28)
    assert first.dtype == torch.uint8
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert all(int(image.max()) > 100 for image in first)  # ink on every one: refused pictures are drawn again


def test_every_kind_draws_a_picture_with_ink() -> None:
    fonts, rng = letter_fonts(), random.Random(0)
    for kind in KINDS:
        image = draw_negative(kind, rng, fonts)
        assert image.mode == "L", kind
        assert min(image.getextrema()) < max(image.getextrema()), kind


def test_no_letter_shaped_like_a_digit_is_drawn() -> None:
    assert not set(LETTERS) & set("OoDQIiJjlLTtZzSsGbBgqYy")


def test_negatives_without_any_letter_font_are_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synthetic_dir: Path
) -> None:
    monkeypatch.setattr(negatives_module, "FONT_ROOT", tmp_path)
    with pytest.raises(ConfigError, match=r"apt-get install fonts-bwht .*or set --data.negatives 0$"):
        MNISTDataModule(data_dir=synthetic_dir, download=False, negatives=10)


def test_negatives_join_the_training_split_only_labelled_negative(synthetic_dir: Path) -> None:
    def module(**kwargs: object) -> MNISTDataModule:
        data = MNISTDataModule(data_dir=synthetic_dir, val_size=200, download=False, **kwargs)
        data.setup("fit")
        return data

    plain, mixed = module(), module(negatives=30)
    train, with_negatives = plain.split("train"), mixed.split("train")
    assert len(with_negatives[1]) == len(train[1]) + 30
    assert torch.equal(with_negatives[1][len(train[1]) :], torch.full((30,), NEGATIVE_LABEL))
    assert torch.equal(with_negatives[0][: len(train[1])], train[0])
    assert torch.equal(mixed.split("val")[1], plain.split("val")[1])
    assert (mixed.input_mean, mixed.input_std) == (plain.input_mean, plain.input_std)


def test_the_outlier_loss_targets_the_uniform_distribution_and_leaves_digits_as_they_were() -> None:
    torch.manual_seed(0)
    model = LitCNN(label_smoothing=0.1, outlier_weight=0.5).eval()  # eval: no dropout, the same logits twice
    model.trains_on_negatives = True  # what setup sets when the data module adds negatives
    images = torch.rand(6, 1, 28, 28)
    logits = model(images)
    digits = torch.tensor([3, 1, 4, 1, 5, 9])
    assert torch.allclose(
        model.training_step((images, digits), 0), F.cross_entropy(logits, digits, label_smoothing=0.1)
    )
    others = torch.full((6,), NEGATIVE_LABEL)
    uniform = -F.log_softmax(logits, dim=1).mean(dim=1).mean()
    assert torch.allclose(model.training_step((images, others), 0), 0.5 * uniform)
    mixed = torch.tensor([3, 1, 4, NEGATIVE_LABEL, NEGATIVE_LABEL, NEGATIVE_LABEL])
    expected = F.cross_entropy(logits[:3], mixed[:3], label_smoothing=0.1) + 0.5 * (
        -F.log_softmax(logits[3:], dim=1).mean(dim=1).mean()
    )
    assert torch.allclose(model.training_step((images, mixed), 0), expected)


def test_a_model_without_outlier_weight_leaves_non_digits_out_of_its_loss() -> None:
    model = LitCNN(outlier_weight=0.0).eval()
    model.trains_on_negatives = True
    images = torch.rand(4, 1, 28, 28)
    labels = torch.tensor([2, 7, NEGATIVE_LABEL, NEGATIVE_LABEL])
    assert torch.allclose(model.training_step((images, labels), 0), F.cross_entropy(model(images[:2]), labels[:2]))


def test_training_accuracy_counts_digits_only() -> None:
    sums = TrainingSums.zeros(torch.device("cpu"))
    logits = torch.eye(10)[[3, 3, 5, 0]]
    labels = torch.tensor([3, 4, NEGATIVE_LABEL, NEGATIVE_LABEL])
    sums.add(torch.tensor(1.0), logits, labels, labels != NEGATIVE_LABEL)
    assert int(sums.correct) == 1
    assert int(sums.count) == 2
    sums.add(torch.tensor(1.0), logits, torch.tensor([3, 3, 5, 1]), None)  # digits only
    assert int(sums.correct) == 4
    assert int(sums.count) == 6


def test_setup_turns_the_outlier_loss_on_only_when_the_data_module_adds_negatives(synthetic_dir: Path) -> None:
    from helpers import quiet_trainer

    for negatives in (0, 12):
        data = MNISTDataModule(data_dir=synthetic_dir, val_size=200, download=False, negatives=negatives)
        model = LitCNN(outlier_weight=0.5)
        model.trainer = quiet_trainer(synthetic_dir.parent / "unused")
        model.trainer.datamodule = data
        model.setup("fit")
        assert model.trains_on_negatives is bool(negatives)


def test_outlier_weight_is_bounded() -> None:
    for bad in (-0.1, 11.0, float("nan"), True):
        with pytest.raises(ConfigError, match="outlier_weight must be in"):
            LitCNN(outlier_weight=bad)


def test_a_spread_answer_is_not_a_digit_and_a_split_one_is_only_unsure() -> None:
    spread = torch.full((10,), 0.1)
    split = torch.tensor([0.5, 0.45] + [0.05 / 8] * 8)
    sure = torch.tensor([0.95] + [0.05 / 9] * 9)
    answers = Predictions(torch.zeros(3, dtype=torch.long), torch.stack([spread, split, sure]))
    assert answers.not_a_digit.tolist() == [True, False, False]
    assert answers.unsure.tolist() == [True, True, False]
    assert NOT_A_DIGIT_BELOW < UNSURE_BELOW


def test_the_predict_command_notes_a_picture_that_looks_like_no_digit(tmp_path: Path) -> None:
    from drawing import draw_digit
    from helpers import untrained_checkpoint

    from mnist_lightning.inference import classify

    ckpt = untrained_checkpoint(tmp_path / "flat.ckpt")  # a linear model with no weights: every class alike
    content = torch.load(ckpt, weights_only=True)
    content["state_dict"] = {k: torch.zeros_like(v) if "net" in k else v for k, v in content["state_dict"].items()}
    torch.save(content, ckpt)
    draw_digit(4).save(tmp_path / "four.png")
    (row,) = classify(ckpt, [tmp_path / "four.png"])
    assert row["note"] == "does not look like a digit"
    assert row["probability"] < NOT_A_DIGIT_BELOW


def test_the_runner_up_is_never_the_answer_itself_even_in_a_tie() -> None:
    tie = torch.tensor([[0.45, 0.45] + [0.1 / 8] * 8])
    for label in (0, 1):
        answer = Predictions(torch.tensor([label]), tie)
        assert int(answer.runner_up[0]) == 1 - label


def test_negatives_for_a_model_that_leaves_them_out_of_its_loss_are_refused_in_one_line(
    synthetic_dir: Path, run_cli, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--data.data_dir", str(synthetic_dir), "--data.val_size", "200", "--data.negatives", "20")
    code = run_cli("fit", *args, "--trainer.max_epochs", "1")
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "--data.negatives 20 adds pictures that are no digits, and LitLogReg leaves them out" in err
