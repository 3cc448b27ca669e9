"""Corrections' checks on their own: a label is one ASCII digit, the folder counts only its digit folders, a
folder that cannot be used is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import HTTPException

from mnist_lightning.errors import ConfigError
from mnist_lightning.serve.collect import LOCK_NAME, check_label, open_collection, save, usage


def test_a_label_is_exactly_one_ascii_digit() -> None:
    assert [check_label(str(digit)) for digit in range(10)] == list("0123456789")
    for label in ("10", "", "7 ", "٧", "/", 7, None, b"7"):
        with pytest.raises(HTTPException) as refused:
            check_label(label)
        assert refused.value.status_code == 422


def test_the_folder_counts_only_its_digit_folders(tmp_path: Path) -> None:
    for name in ("7/a.png", "7/.a.png.1.partial", "3/b.png", "cat/c.png", "d.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"12345")
    assert usage(tmp_path) == (2, 10)


def test_a_collect_folder_that_cannot_be_used_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for folder, words in ((tmp_path / "file", "is a file"), (tmp_path / "file" / "sub", "cannot write there")):
        with pytest.raises(ConfigError) as refused:
            open_collection(folder)
        assert words in str(refused.value)
        assert "\n" not in str(refused.value)
    assert open_collection(tmp_path / "new" / "dir").folder == tmp_path / "new" / "dir"
    assert (tmp_path / "new" / "dir" / LOCK_NAME).is_file()


@pytest.mark.parametrize("plant", ["link", "dangling-link", "file"])
def test_a_digit_folder_planted_as_a_link_or_a_file_is_never_written_through(tmp_path: Path, plant: str) -> None:
    collection = open_collection(tmp_path / "corrections")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    seven = collection.folder / "7"
    if plant == "link":
        seven.symlink_to(elsewhere)
    elif plant == "dangling-link":
        seven.symlink_to(tmp_path / "missing")
    else:
        seven.write_bytes(b"")
    with pytest.raises(HTTPException) as refused:
        save(collection, "7", b"\x89PNG\r\n\x1a\n")
    assert refused.value.status_code == 507
    assert "is a link or a file, not a folder of corrections" in refused.value.detail
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "missing").exists()
    assert save(collection, "1", b"\x89PNG\r\n\x1a\n")["label"] == "1"  # the other digits still work
