"""Teaching the default CNN a handwriting style it misreads: 20 examples in a folder, a short fine-tune with
``--model.init_from`` and ``--data.extra_dirs``, and the style is read on drawings it never saw while MNIST's
test accuracy stays."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zlib
from pathlib import Path

import torch
from helpers import QUIET, REPO, best_checkpoint, handwriting_fonts, run_folder
from PIL import Image

from mnist_lightning import load_model
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.evaluate.renderings import RENDERINGS as ALL_RENDERINGS
from mnist_lightning.evaluate.renderings import draw as draw_digit
from mnist_lightning.inference import predict_digits
from mnist_lightning.preprocessing import preprocess_batch

FONT, DIGIT = "BecauseWeLearn", 7
"""A held-out hand of the handwriting suite whose "7" has a long crossbar: the base CNN misreads 30-47 % of its
writings."""
RENDERINGS = [name for name in ALL_RENDERINGS if name != "tight-crop"]
"""Every way the handwriting suite draws a digit except the one the preprocessing can refuse as blank."""
FINE_TUNE = (
    *("--model.optimizer", "SGD", "--model.optimizer.momentum", "0.9", "--model.lr", "0.01"),
    *("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "50", "--data.extra_repeats", "50"),
)
"""50 steps of SGD: Adam's fresh moment estimates move every weight by about ``lr`` in its first steps, gradient or
not, and cost MNIST accuracy (docs/data.md)."""
QUICK = (*QUIET, "--pictures", "null", "--class_report", "null")


def draw(split: str, count: int) -> list[Image.Image]:
    """``count`` writings of the style, cycling through the renderings, each seeded by ``split`` and its number:
    the training examples and the held-out drawings share no seed."""
    path = handwriting_fonts()[FONT]
    images = []
    for index in range(count):
        rendering = RENDERINGS[index % len(RENDERINGS)]
        images.append(draw_digit(path, DIGIT, rendering, zlib.crc32(f"{split}/{rendering}/{index}".encode())))
    return images


def fit(root: Path, data_dir: Path, *options: str) -> Path:
    """``train.py fit --config configs/cnn.yaml`` in a process of its own; returns the run's ``last.ckpt``."""
    command = [sys.executable, str(REPO / "train.py"), "fit", "--config", str(REPO / "configs" / "cnn.yaml")]
    command += ["--data.data_dir", str(data_dir), "--trainer.default_root_dir", str(root), *QUICK, *options]
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return run_folder(root) / "checkpoints" / "last.ckpt"


def style_accuracy(checkpoint: Path, digits: torch.Tensor) -> float:
    """On writings preprocessed once, as ``predict_images`` preprocesses them (half the test's reading time)."""
    return (predict_digits(load_model(checkpoint), digits).labels == DIGIT).float().mean().item()


def mnist_accuracy(checkpoint: Path, data_dir: Path) -> float:
    images, labels = MNISTDataModule(data_dir=data_dir, download=False).split("test")
    return (predict_digits(load_model(checkpoint), images).labels == labels).float().mean().item()


def test_twenty_examples_teach_the_cnn_a_style_without_costing_mnist(real_data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    fit(tmp_path / "base", real_data_dir)
    base = best_checkpoint(tmp_path / "base")

    corrections = tmp_path / "corrections" / str(DIGIT)
    corrections.mkdir(parents=True)
    examples = draw("train", 20)
    for index, image in enumerate(examples):
        image.save(corrections / f"{index:02d}.png")
    held_out = draw("held-out", 10 * len(RENDERINGS))
    digits = preprocess_batch(held_out)
    digests = {hashlib.sha1(image.tobytes()).hexdigest() for image in examples}
    assert not digests & {hashlib.sha1(image.tobytes()).hexdigest() for image in held_out}

    (tmp_path / "tuned").mkdir()
    extras = ("--model.init_from", str(base), "--data.extra_dirs", f"[{corrections.parent}]")
    tuned = fit(tmp_path / "tuned", real_data_dir, *extras, *FINE_TUNE)
    assert torch.load(tuned, weights_only=True)["hyper_parameters"]["init_from"] == str(base)

    before, after = style_accuracy(base, digits), style_accuracy(tuned, digits)
    mnist_before, mnist_after = mnist_accuracy(base, real_data_dir), mnist_accuracy(tuned, real_data_dir)
    print(f"style {before:.2%} -> {after:.2%}; MNIST test {mnist_before:.2%} -> {mnist_after:.2%}")
    assert before <= 0.8, "the base CNN must misread one writing in five for this test to show anything"
    assert after >= 0.95
    assert mnist_after >= mnist_before - 0.002, "at most 0.2 points of MNIST test accuracy lost"
