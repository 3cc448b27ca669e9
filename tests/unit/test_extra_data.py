"""``--data.extra_dirs`` read: labelled folders (torchvision's ImageFolder layout), each image preprocessed as
``predict_images`` does; bad folders, files, images and settings are one-line errors naming them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from drawing import write_extras
from PIL import Image

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.data.extra import list_extra_images, read_extra_images
from mnist_lightning.errors import ConfigError, DataError
from mnist_lightning.preprocessing import preprocess_batch

# --- reading the folders -----------------------------------------------------------------------------------------


def test_images_of_any_size_are_preprocessed_as_predict_images_does(tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras")
    images, labels = read_extra_images([extras])
    paths = [path for path, _ in list_extra_images(extras)]
    assert images.dtype == torch.uint8
    assert images.shape == (4, 1, 28, 28)
    assert labels.tolist() == [1, 1, 7, 7]
    expected = preprocess_batch(paths)
    assert (images.float() / 255 - expected).abs().max() <= 0.5 / 255 + 1e-6  # stored as MNIST's bytes are


def test_hidden_files_are_skipped_and_the_order_is_sorted(tmp_path: Path) -> None:
    extras = write_extras(tmp_path / "extras")
    (extras / ".DS_Store").write_bytes(b"junk")
    (extras / "7" / ".a1b2.png.123.partial").write_bytes(b"half a png")  # an atomic writer at work
    (extras / ".git").mkdir()
    (extras / "7" / ".hidden").mkdir()
    write_extras(extras / "7" / ".hidden")  # a hidden folder is skipped whole, never read
    samples = list_extra_images(extras)
    assert [Path(path).relative_to(extras).as_posix() for path, _ in samples] == [
        "1/0.png",
        "1/1.png",
        "7/0.png",
        "7/1.png",
    ]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: (root / "seven").mkdir(), r"extras/seven does not belong in .*: expected only class"),
        (lambda root: (root / "10").mkdir(), r"extras/10 does not belong in .*class folders named 0-9"),
        (lambda root: (root / "notes.txt").write_text("hi"), r"extras/notes.txt does not belong in"),
        (lambda root: (root / "7" / "notes.txt").write_text("hi"), r"extras/7/notes.txt is not an image file: .*\.png"),
        (lambda root: (root / "7" / "x.png").write_bytes(b"not a png"), r"extras/7/x.png: not a readable image"),
        (lambda root: Image.new("L", (50, 50), 255).save(root / "7" / "white.png"), r"extras/7/white.png: .*blank"),
        (lambda root: (root / "7" / "more").mkdir(), r"extras/7/more is a folder inside a class folder"),
        (lambda root: (root / "7" / "loop").symlink_to(root / "7"), r"extras/7/loop is a symbolic link"),
        (lambda root: (root / "3").symlink_to(root / "7"), r"extras/3 is a symbolic link"),
    ],
    ids=[
        *("word-folder", "number-folder", "file-at-top", "text-file", "undecodable", "blank"),
        *("subfolder", "link-loop", "linked-class-folder"),
    ],
)
def test_what_does_not_belong_is_a_one_line_error_naming_it(tmp_path: Path, make, expected: str) -> None:
    extras = write_extras(tmp_path / "extras")
    make(extras)
    with pytest.raises(DataError, match=expected) as raised:
        read_extra_images([extras])
    assert "\n" not in str(raised.value)


def test_empty_and_missing_folders_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty is empty: expected class folders 0-9"):
        read_extra_images([tmp_path / "empty"])
    (tmp_path / "classes" / "3").mkdir(parents=True)
    with pytest.raises(DataError, match=r"classes holds no images"):
        read_extra_images([tmp_path / "classes"])
    with pytest.raises(DataError, match=r"missing is not a folder"):
        read_extra_images([tmp_path / "missing"])


def test_bad_settings_are_refused_before_anything_is_read(synthetic_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="extra_repeats must be a whole number 1-10000, got 0"):
        MNISTDataModule(data_dir=synthetic_dir, extra_dirs=[tmp_path], extra_repeats=0)
    with pytest.raises(ConfigError, match="extra_dirs is a list of folders"):
        MNISTDataModule(data_dir=synthetic_dir, extra_dirs=str(tmp_path))


def test_the_same_folder_twice_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    """Given twice (another spelling, or a link to it), every image of the folder would count twice."""
    extras = write_extras(tmp_path / "extras")
    (tmp_path / "again").symlink_to(extras)
    for second in (f"{extras}/", str(tmp_path / "again")):
        with pytest.raises(ConfigError, match=r"names .*extras and .*, the same folder: give it once"):
            MNISTDataModule(data_dir=tmp_path, extra_dirs=[str(extras), second])
