"""``--data.extra_dirs``: labelled folders (torchvision's ImageFolder layout) mixed into the training split only,
each image preprocessed as ``predict_images`` does, each drawn ``extra_repeats`` times per epoch; bad folders,
files and images are one-line errors naming them; a resumed run with extras is bitwise the uninterrupted one."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from drawing import draw_digit
from helpers import run_folder
from PIL import Image
from test_cli import fit_subprocess

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.data.extra import list_extra_images, read_extra_images
from mnist_lightning.errors import ConfigError, DataError
from mnist_lightning.preprocess import preprocess_batch

SIZES = {"1": (40, 60), "7": (300, 200)}
"""Extra images of any size: a small and a large one per class."""


def write_extras(root: Path, per_class: int = 2) -> Path:
    """``root/1`` and ``root/7`` holding ``per_class`` typed digits each, of two different sizes."""
    for label, size in SIZES.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            canvas = (size[0] + 10 * index, size[1] + 10 * index)
            draw_digit(int(label), size=min(canvas) * 3 // 4, canvas=canvas, at=(4, 0)).save(
                root / label / f"{index}.png"
            )
    return root


def datamodule(data_dir: Path, **kwargs: object) -> MNISTDataModule:
    module = MNISTDataModule(data_dir=data_dir, val_size=200, batch_size=100, download=False, **kwargs)
    module.setup("fit")
    return module


# --- reading the folders -----------------------------------------------------------------------------------------


@pytest.mark.unit
def test_images_of_any_size_are_preprocessed_as_predict_images_does(tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras")
    images, labels = read_extra_images([extras])
    paths = [path for path, _ in list_extra_images(extras)]
    assert images.dtype == torch.uint8
    assert images.shape == (4, 1, 28, 28)
    assert labels.tolist() == [1, 1, 7, 7]
    expected = preprocess_batch(paths)
    assert (images.float() / 255 - expected).abs().max() <= 0.5 / 255 + 1e-6  # stored as MNIST's bytes are


@pytest.mark.unit
def test_hidden_files_are_skipped_and_the_order_is_sorted(tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras")
    (extras / ".DS_Store").write_bytes(b"junk")
    (extras / "7" / ".a1b2.png.123.partial").write_bytes(b"half a png")  # an atomic writer at work
    (extras / ".git").mkdir()
    samples = list_extra_images(extras)
    assert [Path(path).relative_to(extras).as_posix() for path, _ in samples] == [
        "1/0.png",
        "1/1.png",
        "7/0.png",
        "7/1.png",
    ]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: (root / "seven").mkdir(), r"extras/seven does not belong in .*: expected only class"),
        (lambda root: (root / "10").mkdir(), r"extras/10 does not belong in .*class folders named 0-9"),
        (lambda root: (root / "notes.txt").write_text("hi"), r"extras/notes.txt does not belong in"),
        (lambda root: (root / "7" / "notes.txt").write_text("hi"), r"extras/7/notes.txt is not an image file: .*\.png"),
        (lambda root: (root / "7" / "x.png").write_bytes(b"not a png"), r"extras/7/x.png: not a readable image"),
        (lambda root: Image.new("L", (50, 50), 255).save(root / "7" / "white.png"), r"extras/7/white.png: .*blank"),
    ],
    ids=["word-folder", "number-folder", "file-at-top", "text-file", "undecodable", "blank"],
)
def test_what_does_not_belong_is_a_one_line_error_naming_it(tmp_path: Path, make, expected: str) -> None:
    extras = write_extras(tmp_path / "extras")
    make(extras)
    with pytest.raises(DataError, match=expected) as raised:
        read_extra_images([extras])
    assert "\n" not in str(raised.value)


@pytest.mark.unit
def test_empty_and_missing_folders_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty is empty: expected class folders 0-9"):
        read_extra_images([tmp_path / "empty"])
    (tmp_path / "classes" / "3").mkdir(parents=True)
    with pytest.raises(DataError, match=r"classes holds no images"):
        read_extra_images([tmp_path / "classes"])
    with pytest.raises(DataError, match=r"missing is not a folder"):
        read_extra_images([tmp_path / "missing"])


@pytest.mark.unit
def test_bad_settings_are_refused_before_anything_is_read(synthetic_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="extra_repeats must be a whole number 1-10000, got 0"):
        MNISTDataModule(data_dir=synthetic_dir, extra_dirs=[tmp_path], extra_repeats=0)
    with pytest.raises(ConfigError, match="extra_dirs is a list of folders"):
        MNISTDataModule(data_dir=synthetic_dir, extra_dirs=str(tmp_path))


# --- the training split -----------------------------------------------------------------------------------------


def test_extras_join_the_training_split_only_each_repeated(synthetic_dir: Path, tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras")
    plain = datamodule(synthetic_dir)
    mixed = datamodule(synthetic_dir, extra_dirs=[extras], extra_repeats=3)
    train, with_extras = plain.split("train"), mixed.split("train")
    labels = read_extra_images([extras])[1]
    assert len(with_extras[1]) == len(train[1]) + 3 * 4
    assert torch.equal(with_extras[0][: len(train[1])], train[0])  # MNIST's rows unchanged, extras after them
    assert torch.equal(with_extras[1][len(train[1]) :], labels.repeat(3))
    for split in ("val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(mixed.split(split), plain.split(split), strict=True)), split
    assert (mixed.input_mean, mixed.input_std) == (plain.input_mean, plain.input_std)  # statistics of MNIST's rows


def test_each_extra_image_is_drawn_repeats_times_per_epoch(synthetic_dir: Path, tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras")
    images, _ = read_extra_images([extras])
    module = datamodule(synthetic_dir, extra_dirs=[extras], extra_repeats=5)
    seen = torch.cat([batch[0] for batch in module.train_dataloader()])
    wanted = images.float() / 255
    for image in wanted:
        assert int((seen == image).flatten(1).all(dim=1).sum()) == 5


def test_a_resume_warns_when_the_folders_changed(synthetic_dir: Path, tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras")
    saved = datamodule(synthetic_dir, extra_dirs=[extras]).state_dict()
    datamodule(synthetic_dir, extra_dirs=[extras]).load_state_dict(saved)  # unchanged: no warning
    (extras / "7" / "0.png").unlink()
    with pytest.warns(UserWarning, match=r"the folders' images changed since the checkpoint was saved"):
        datamodule(synthetic_dir, extra_dirs=[extras]).load_state_dict(saved)


@pytest.mark.slow
def test_a_run_with_extras_killed_mid_epoch_resumes_bitwise_identical(synthetic_dir: Path, tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras", per_class=3)
    options = (
        "--data.extra_dirs",
        f"[{extras}]",
        "--data.extra_repeats",
        "30",
        "--last_checkpoint.every_n_train_steps",
        "4",
    )
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir()
    broken.mkdir()
    fit_subprocess(whole, synthetic_dir, *options)
    kill = ("--trainer.callbacks+=helpers.KillAtStep", "--trainer.callbacks.step", "18")  # last.ckpt: step 16
    assert fit_subprocess(broken, synthetic_dir, *options, *kill, check=False).returncode == -signal.SIGKILL
    fit_subprocess(broken, synthetic_dir, *options, *kill, "--ckpt_path", "last")
    expected = torch.load(run_folder(whole) / "checkpoints" / "last.ckpt", weights_only=True)
    actual = torch.load(run_folder(broken) / "checkpoints" / "last.ckpt", weights_only=True)
    assert actual["global_step"] == expected["global_step"] == 3 * 12  # (1,000 + 180) / 100 batches per epoch
    for key, tensor in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][key], tensor), key
