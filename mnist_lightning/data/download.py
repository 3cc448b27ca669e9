"""Fetching the raw files from the published mirrors.

Unlike torchvision's downloader this never hangs (every socket operation and every whole file has a
deadline), leaves no partial files behind, and checks what it fetched before putting it in place.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

from mnist_lightning.data.idx import KNOWN_MD5, TORCHVISION_CLASSES, DatasetName, md5, missing_hint
from mnist_lightning.errors import DataError


def download(
    dataset: DatasetName,
    folder: Path,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
    fetch: bool = True,
) -> None:
    """Put the missing raw files of ``dataset`` into ``folder``: from ``<name>.gz`` archives already there (as
    mirrors and other tools leave them), else fetched from each mirror in turn (unless ``fetch`` is false).

    Folders it had to create are removed again when it fails, so no empty ``raw/`` is left behind.
    """
    source = TORCHVISION_CLASSES[dataset]
    mirrors = list(mirrors or source.mirrors)
    created = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for archive, archive_md5 in source.resources:
            target = folder / archive.removesuffix(".gz")
            if target.is_file():
                continue
            if (folder / archive).is_file():
                extract(folder / archive, target)
            elif not fetch:
                raise DataError(f"{target} is missing (and so is {archive}). {missing_hint(folder)}")
            else:
                _fetch_from_mirrors(archive, archive_md5, target, dataset, mirrors, timeout)
    except BaseException:
        for empty in (d for d in created if d.is_dir() and not any(d.iterdir())):
            empty.rmdir()
        raise


def _fetch_from_mirrors(
    archive: str, archive_md5: str, target: Path, dataset: DatasetName, mirrors: list[str], timeout: float
) -> None:
    failures = []
    for mirror in mirrors:
        try:
            _fetch_archive(f"{mirror}{archive}", archive_md5, target, dataset, timeout)
            return
        except (OSError, DataError) as err:
            failures.append(f"  {mirror}{archive}: {err}")
    raise DataError(
        f"Could not download {archive} from any mirror:\n" + "\n".join(failures) + f"\n{missing_hint(target.parent)}"
    )


def _fetch_archive(url: str, archive_md5: str, target: Path, dataset: DatasetName, timeout: float) -> None:
    """Download one archive, check it against the published checksums, and extract it."""
    partial_gz = target.with_name(f".{target.name}.gz.partial")
    deadline = time.monotonic() + 20 * timeout
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "mnist-lightning"})
        with urllib.request.urlopen(request, timeout=timeout) as response, partial_gz.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the transfer took longer than {20 * timeout:.0f} s")
        expected = KNOWN_MD5.get(dataset, {}).get(target.name)  # MNIST: the uncompressed originals' MD5
        if expected is None and (digest := md5(partial_gz.read_bytes())) != archive_md5:
            raise DataError(f"the archive's MD5 is {digest}, expected {archive_md5}")
        extract(partial_gz, target, expected_md5=expected)
    except urllib.error.URLError as err:
        raise OSError(f"{err.reason}") from None
    finally:
        partial_gz.unlink(missing_ok=True)


def extract(archive: Path, target: Path, expected_md5: str | None = None) -> None:
    """Decompress ``archive`` into ``target``; ``target`` appears only complete and checked.

    gzip's own CRC catches a damaged archive; ``expected_md5`` (a download of MNIST's originals) checks the
    content too. Archives a user put there are not held to the mirrors' bytes (they may be recompressed): the
    IDX files they hold are verified when they are read, like any others.
    """
    partial = target.with_name(f".{target.name}.partial")
    try:
        with gzip.open(archive, "rb") as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        if expected_md5 is not None and (digest := md5(partial.read_bytes())) != expected_md5:
            raise DataError(f"the extracted file's MD5 is {digest}, the original's is {expected_md5}")
        os.replace(partial, target)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(
            f"{archive} is not a valid gzip archive ({err}). Delete it so that it is downloaded again, or "
            "point --data.data_dir at a folder with intact files."
        ) from None
    finally:
        partial.unlink(missing_ok=True)
