"""Corrections' checks on their own: a label is one ASCII digit, the folder counts only its digit folders, a
folder that cannot be used is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.exceptions import HTTPException  # the base of FastAPI's: both kinds the server raises

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
    assert "the collection's 7/ is a link or a file, not a folder of corrections" in refused.value.detail
    assert str(tmp_path) not in refused.value.detail, "every visitor reads it: no path of the server's disk"
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "missing").exists()
    assert save(collection, "1", b"\x89PNG\r\n\x1a\n")["label"] == "1"  # the other digits still work


def canvas_png() -> bytes:
    import io

    from PIL import Image, ImageDraw

    image = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(image).line([(140, 40), (140, 240)], fill=0, width=20)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_full_folder_answers_409_before_the_image_is_decoded(tmp_path: Path, monkeypatch) -> None:
    from mnist_lightning.serve import app

    collection = open_collection(tmp_path / "corrections", max_files=1)
    assert app.keep_correction(collection, "1", canvas_png(), 10.0)["files"] == 1
    monkeypatch.setattr(app, "decode_image", lambda data: pytest.fail("decoded although the folder is full"))
    with pytest.raises(HTTPException) as refused:
        app.keep_correction(collection, "1", canvas_png(), 10.0)
    assert refused.value.status_code == 409


def test_corrections_are_decoded_one_at_a_time_and_within_predicts_time(tmp_path: Path, monkeypatch) -> None:
    import time

    from mnist_lightning.serve import app

    collection = open_collection(tmp_path / "corrections")
    monkeypatch.setattr(app, "DECODE_WAIT_S", 0.05)
    assert app.DECODE_SLOTS.acquire(timeout=1)  # another correction is being decoded
    try:
        with pytest.raises(HTTPException) as busy:
            app.keep_correction(collection, "1", canvas_png(), 10.0)
        assert busy.value.status_code == 503
    finally:
        app.DECODE_SLOTS.release()
    real = app.decode_image
    monkeypatch.setattr(app, "decode_image", lambda data: (time.sleep(0.2), real(data))[1])
    with pytest.raises(HTTPException) as slow:
        app.keep_correction(collection, "1", canvas_png(), 0.1)
    assert slow.value.status_code == 422
    assert "took over 0.1 s to read (the server's limit per image)" in slow.value.detail
    assert usage(collection.folder) == (0, 0), "refused corrections are never written"
