"""Writing outputs: a write that fails, or a path that is a folder, is one line naming the path and the cause,
and leaves no partial file."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from helpers import best_checkpoint
from PIL import Image

from mnist_lightning import export, predict
from mnist_lightning.fileio import WriteError, atomic_write


def test_outputs_into_a_folder_are_one_line(shared_run: Path, tmp_path: Path, capsys) -> None:
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(255, (10, 5, 16, 23))
    canvas.save(tmp_path / "digit.png")
    ckpt = str(best_checkpoint(shared_run))
    assert export.main(["--ckpt", ckpt, "--out", str(tmp_path)]) == 1
    assert f"Cannot write {tmp_path}: it is a folder" in capsys.readouterr().err
    assert predict.main(["--ckpt", ckpt, str(tmp_path / "digit.png"), "--csv", str(tmp_path)]) == 1
    assert f"Cannot write {tmp_path}: it is a folder" in capsys.readouterr().err


@pytest.mark.unit
@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (errno.EROFS, "the folder is on a read-only filesystem"),
        (errno.ENOSPC, "the disk is full"),
        (errno.EACCES, "the folder is not writable"),
    ],
)
def test_a_failed_write_names_path_and_cause_and_leaves_nothing(tmp_path: Path, code: int, cause: str) -> None:
    def write(stream) -> None:
        stream.write(b"partial data")
        raise OSError(code, "simulated")

    target = tmp_path / "out" / "model.pt"
    with pytest.raises(WriteError, match=f"Cannot write {target}: {cause}"):
        atomic_write(target, write)
    assert list(target.parent.iterdir()) == [], "no partial file is left, and its cleanup hid nothing"
