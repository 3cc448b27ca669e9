"""Every 507 of the corrections endpoint names what failed within the collection, never by the server's own path:
every visitor of the page reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import HTTPException

from mnist_lightning.fileio import WriteError
from mnist_lightning.serve import collect
from mnist_lightning.serve.collect import LOCK_NAME, locked, open_collection, save

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_broken_lock_answers_507_without_the_server_path(tmp_path: Path) -> None:
    collection = open_collection(tmp_path / "corrections")
    (collection.folder / LOCK_NAME).unlink()
    (collection.folder / LOCK_NAME).mkdir()
    with pytest.raises(HTTPException) as refused, locked(collection.folder):
        pass
    assert refused.value.status_code == 507
    assert refused.value.detail.startswith(f"Cannot lock {LOCK_NAME}: it is a folder"), refused.value.detail
    assert str(tmp_path) not in refused.value.detail


def test_a_failed_write_answers_507_without_the_server_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    collection = open_collection(tmp_path / "corrections")

    def disk_full(path: Path, write: object) -> None:  # what atomic_write says when the disk is full
        raise WriteError(f"Cannot write {path}: the disk is full. Nothing was written; choose another place.")

    monkeypatch.setattr(collect, "atomic_write", disk_full)
    with pytest.raises(HTTPException) as refused:
        save(collection, "7", PNG)
    assert refused.value.status_code == 507
    assert refused.value.detail.startswith("Cannot write 7/"), refused.value.detail
    assert "the disk is full" in refused.value.detail
    assert str(tmp_path) not in refused.value.detail
