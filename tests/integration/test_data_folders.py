"""Odd data folders a user may point at: archives only, a damaged archive, a tiny validation split."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from helpers import FAST, write_dataset


def test_a_data_folder_with_only_gz_archives_is_used(tmp_path: Path, run_cli) -> None:
    raw = write_dataset(tmp_path / "data") / "MNIST" / "raw"
    for path in list(raw.iterdir()):
        with gzip.open(raw / f"{path.name}.gz", "wb") as archive:
            archive.write(path.read_bytes())
        path.unlink()
    args = ("--data.data_dir", str(tmp_path / "data"), "--data.download", "false", *FAST)
    assert run_cli("fit", *args) == 0
    assert len(list(raw.glob("*-ubyte"))) == 4


def test_a_damaged_gz_archive_is_named(tmp_path: Path, run_cli, capsys) -> None:
    raw = write_dataset(tmp_path / "data") / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    assert run_cli("fit", "--data.data_dir", str(tmp_path / "data"), *FAST) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "t10k-labels-idx1-ubyte.gz is not a valid gzip archive" in err[0]


def test_a_tiny_validation_set_is_warned_about(run_cli, synthetic_dir: Path, caplog) -> None:
    with pytest.warns(UserWarning, match="validates on 1 image"):
        assert (
            run_cli("fit", "--data.data_dir", str(synthetic_dir), "--data.val_size", "1", "--trainer.max_epochs", "1")
            == 0
        )
