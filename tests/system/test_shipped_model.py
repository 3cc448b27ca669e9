"""The shipped CNN reproduces the figures its card records, and a fresh install reads a digit with it: no
training step, no ``--ckpt``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from drawing import draw_digit
from helpers import handwriting_fonts

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.evaluate import handwriting
from mnist_lightning.inference import SHIPPED_MODEL, load_model, predict_digits, shipped_card, shipped_summary

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_model_reproduces_its_mnist_test_accuracy(real_data_dir: Path) -> None:
    images, labels = MNISTDataModule(data_dir=real_data_dir, download=False).split("test")
    accuracy = float((predict_digits(load_model(SHIPPED_MODEL), images).labels == labels).float().mean())
    assert accuracy == pytest.approx(shipped_card()["mnist_test_accuracy"], abs=2e-4)  # a digit or two: CPU math


def test_the_shipped_model_reproduces_its_held_out_handwriting_figure() -> None:
    handwriting_fonts()  # the fonts' packages, or a failure that names them
    check = shipped_card()["check"]
    result = handwriting.evaluate(
        {"shipped": load_model(SHIPPED_MODEL)}, check["hands"], seed=check["seed"], variants=check["variants"]
    )
    assert result["models"]["shipped"]["sets"]["held-out"]["accuracy"] == pytest.approx(check["accuracy"], abs=2e-3)


def test_predict_without_ckpt_reads_a_digit_with_the_shipped_model(tmp_path: Path) -> None:
    draw_digit(3).save(tmp_path / "three.png")
    done = subprocess.run(
        [sys.executable, "-m", "mnist_lightning.commands.predict", str(tmp_path / "three.png")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].split()[:2] == [str(tmp_path / "three.png"), "3"], done.stdout
    assert f"No --ckpt: using {shipped_summary()}" in done.stderr
