"""Writing outputs: a write that fails, or a path that is a folder, is one line naming the path and the cause,
and leaves no partial file. Locks: held by one process at a time, dropped with it, never following a planted link."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from fastapi import HTTPException
from helpers import best_checkpoint
from PIL import Image

from mnist_lightning.commands import export, predict
from mnist_lightning.commands.runner import run
from mnist_lightning.errors import ConfigError
from mnist_lightning.fileio import WriteError, atomic_write, hold_lock
from mnist_lightning.runlock import LOCK_NAME, lock_run, release_runs
from mnist_lightning.serve.collect import locked, open_collection


def test_outputs_into_a_folder_are_one_line(shared_run: Path, tmp_path: Path, capsys) -> None:
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(255, (10, 5, 16, 23))
    canvas.save(tmp_path / "digit.png")
    ckpt = str(best_checkpoint(shared_run))
    assert run(export.main, ["--ckpt", ckpt, "--out", str(tmp_path)]) == 2, "refused at start, before the work"
    assert f"--out: {tmp_path} is a folder" in capsys.readouterr().err
    assert run(predict.main, ["--ckpt", ckpt, str(tmp_path / "digit.png"), "--csv", str(tmp_path)]) == 2
    assert f"--csv: {tmp_path} is a folder" in capsys.readouterr().err


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


@pytest.mark.parametrize("planted", ["link", "dangling-link", "folder"])
def test_a_lock_never_follows_what_is_planted_at_its_path(tmp_path: Path, planted: str) -> None:
    """A run folder's or a corrections folder's ``.lock`` replaced by a link or a folder: one line, refused, and
    nothing is created or written outside the folder."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "victim"
    if planted == "link":
        target.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    lock = folder / LOCK_NAME
    if planted == "folder":
        lock.mkdir()
    else:
        lock.symlink_to(target)
    with pytest.raises(WriteError, match=r"^Cannot lock .*: it is a (symbolic link|folder), not a file") as refused:
        hold_lock(lock, timeout=0)
    assert "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="remove it: a lock file holds no data"):
        lock_run(folder)
    with pytest.raises(HTTPException) as broken, locked(folder):
        pass
    assert broken.value.status_code == 507
    with pytest.raises(ConfigError, match=r"^--collect .*: Cannot lock"):
        open_collection(folder)
    assert sorted(p.name for p in outside.iterdir()) == (["victim"] if planted == "link" else [])
    if planted == "link":
        assert target.read_text() == "precious"


def test_a_run_held_by_another_writer_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "version_0"
    folder.mkdir()
    holder = hold_lock(folder / LOCK_NAME)  # as another process training the run holds it
    try:
        with pytest.raises(ConfigError, match=r"is being trained by another process: wait for it to end") as refused:
            lock_run(folder)
        assert "\n" not in str(refused.value)
    finally:
        holder.release()
    lock_run(folder)
    release_runs()
