"""Downloads that cannot finish: mirrors that accept and never answer fail within the timeout, in one message,
leaving nothing behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mnist_lightning.data.download import download
from mnist_lightning.errors import DataError


def test_only_hanging_mirrors_fail_within_the_timeout_with_one_message(silent_server: str, tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        download("mnist", raw, mirrors=[silent_server, silent_server], timeout=0.5)
    assert time.monotonic() - started < 5
    assert str(error.value).count(silent_server) == 2
    assert "timed out" in str(error.value)
    assert list(tmp_path.iterdir()) == [], "no partial files and no empty folders stay behind"
