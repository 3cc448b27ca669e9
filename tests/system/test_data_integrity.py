"""The real MNIST files, damaged in a copy or served by a mirror: every damage is caught and named in one line,
a checksum verdict is cached outside the data, a hanging mirror gives way to the next."""

from __future__ import annotations

import gzip
import http.server
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_lightning.data import idx
from mnist_lightning.data.download import download
from mnist_lightning.data.idx import load_split
from mnist_lightning.errors import DataError

RAW_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture
def real_copy(real_data_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the real raw folder, to damage."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_NAMES:
        shutil.copyfile(real_data_dir / "MNIST" / "raw" / name, raw / name)
    return raw


def test_a_flipped_bit_is_caught_by_the_checksum(real_copy: Path) -> None:
    path = real_copy / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[123_456] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="MD5") as error:
        load_split(real_copy, "mnist", "train")
    assert str(path) in str(error.value)
    assert "Delete it" in str(error.value)


def test_an_image_file_swapped_for_the_test_sets_is_caught(real_copy: Path) -> None:
    shutil.copyfile(real_copy / "t10k-images-idx3-ubyte", real_copy / "train-images-idx3-ubyte")
    with pytest.raises(
        DataError, match="train-images-idx3-ubyte: it holds 10,000 images where the train split has 60,000"
    ):
        load_split(real_copy, "mnist", "train")


def test_a_truncated_file_is_named_with_its_expected_size(real_copy: Path) -> None:
    path = real_copy / "train-images-idx3-ubyte"
    with path.open("r+b") as stream:
        stream.truncate(1_000_000)
    with pytest.raises(DataError, match=r"1,000,000 bytes long, expected 47,040,016"):
        load_split(real_copy, "mnist", "train")


def test_a_bad_magic_number_is_a_clear_error(real_copy: Path) -> None:
    path = real_copy / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])
    with pytest.raises(DataError, match="bad IDX magic number 00000803"):
        load_split(real_copy, "mnist", "test")


def test_the_checksum_verdict_is_cached_outside_the_data_until_the_file_changes(real_copy: Path, monkeypatch) -> None:
    before = sorted(path.name for path in real_copy.iterdir())
    load_split(real_copy, "mnist", "test")
    assert sorted(path.name for path in real_copy.iterdir()) == before, "nothing is written beside the data"
    assert (Path(os.environ["XDG_CACHE_HOME"]) / "mnist_lightning" / "verified.json").is_file()

    def no_hashing(path: Path) -> str:
        raise AssertionError("verified files must not be hashed again")

    monkeypatch.setattr(idx, "calculate_md5", no_hashing)
    load_split(real_copy, "mnist", "test")
    path = real_copy / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes())  # same bytes, new mtime: hashed again
    with pytest.raises(AssertionError, match="hashed again"):
        load_split(real_copy, "mnist", "test")


def test_the_cli_reports_damaged_data_in_one_line(real_copy: Path, run_cli, capsys) -> None:
    (real_copy / "train-labels-idx1-ubyte").write_bytes(b"garbage")
    assert run_cli("fit", "--data.data_dir", str(real_copy.parents[1])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "train-labels-idx1-ubyte" in err[0]
    assert "--data.data_dir" in err[0]


@pytest.fixture
def mirror(real_data_dir: Path, tmp_path: Path) -> Iterator[str]:
    """An HTTP mirror serving the real MNIST archives from loopback."""
    root = tmp_path / "mirror"
    root.mkdir()
    for name in RAW_NAMES:
        with gzip.open(root / f"{name}.gz", "wb", compresslevel=1) as out:
            out.write((real_data_dir / "MNIST" / "raw" / name).read_bytes())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_hanging_mirror_times_out_and_the_next_one_is_used(
    silent_server: str, mirror: str, real_data_dir: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "data" / "MNIST" / "raw"
    started = time.monotonic()
    download("mnist", raw, mirrors=[silent_server, mirror], timeout=1.0)
    assert time.monotonic() - started < 30
    for name in RAW_NAMES:
        assert (raw / name).read_bytes() == (real_data_dir / "MNIST" / "raw" / name).read_bytes()
    assert sorted(p.name for p in raw.iterdir()) == sorted(RAW_NAMES)


def test_swapped_label_files_blame_the_labels(real_data_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(real_data_dir / "MNIST" / "raw", raw)
    (raw / "train-labels-idx1-ubyte").rename(raw / "swap")
    (raw / "t10k-labels-idx1-ubyte").rename(raw / "train-labels-idx1-ubyte")
    (raw / "swap").rename(raw / "t10k-labels-idx1-ubyte")
    for split, blamed in (("train", "train-labels-idx1-ubyte"), ("test", "t10k-labels-idx1-ubyte")):
        with pytest.raises(Exception, match=f"{blamed}: it holds .* labels where the {split} split has") as error:
            load_split(raw, "mnist", split)
        assert "swapped with" in str(error.value)
