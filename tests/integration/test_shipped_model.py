"""The CNN the package ships: loaded through the same vetting as any checkpoint, used by serve and predict when
no ``--ckpt`` is given, and named with its measured figures (``tests/system/test_shipped_model.py`` checks that
the file reproduces them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mnist_lightning.checkpoint import read_checkpoint
from mnist_lightning.commands.serve import checkpoint_path
from mnist_lightning.inference import SHIPPED_MODEL, load_model, shipped_card, shipped_summary
from mnist_lightning.models import LitCNN
from mnist_lightning.serve.app import model_metadata


def test_the_shipped_model_is_a_small_vetted_cnn_without_the_run_that_made_it() -> None:
    assert SHIPPED_MODEL.stat().st_size < 5 * 2**20
    content = read_checkpoint(SHIPPED_MODEL)
    assert set(content) <= {"pytorch-lightning_version", "state_dict", "hparams_name", "hyper_parameters"}
    model = load_model(SHIPPED_MODEL)
    assert isinstance(model, LitCNN)
    assert not model.training
    assert model.hparams.init_from is None
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_the_card_names_the_config_that_made_it_and_what_it_measured() -> None:
    card = shipped_card()
    config = Path(__file__).resolve().parents[2] / card["config"]
    assert config.is_file(), card["config"]
    assert card["trained_by"] == f"python train.py fit --config {card['config']}"
    assert card["made_by"].startswith("python bench/shipped_model.py")
    assert 0.99 < card["mnist_test_accuracy"] <= 1
    assert card["handwriting"]["hands"] == "held-out"
    summary = shipped_summary()
    assert f"{card['mnist_test_accuracy']:.2%}" in summary
    assert card["config"] in summary


def test_serve_without_ckpt_serves_the_shipped_model_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert checkpoint_path(None, tmp_path) == SHIPPED_MODEL
    assert capsys.readouterr().err == f"No --ckpt: serving {shipped_summary()}\n"
    info = model_metadata(SHIPPED_MODEL)
    assert info["checkpoint"] == "shipped"
    assert info["model_class"] == "LitCNN"
    assert info["summary"] == f"The {shipped_summary().removeprefix('the ')}."
    assert str(SHIPPED_MODEL.parent) not in str(info)  # the page shows every visitor /info: no server paths
