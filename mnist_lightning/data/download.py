"""Fetching the raw files from the published mirrors.

torchvision extracts the archives and computes their MD5 (``extract_archive``, ``calculate_md5``); the fetch is our
own because torchvision's ``download_url`` has no deadline (it waits forever on a mirror that accepts and never
answers) and writes straight under the final name (an interrupted download leaves a partial file that looks
present). Each file is fetched, checked and extracted in a scratch folder beside its target and moved in place
only when complete, so a failure leaves nothing behind.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

from torchvision.datasets.utils import calculate_md5, extract_archive

from mnist_lightning.data.idx import KNOWN_MD5, TORCHVISION_CLASSES, DatasetName, missing_hint
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

    MNIST downloads are checked by the uncompressed originals' MD5, not the archive's: mirrors may recompress.
    Folders it had to create are removed again when it fails, so no empty ``raw/`` is left behind.
    """
    source = TORCHVISION_CLASSES[dataset]
    created = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for archive, archive_md5 in source.resources:
            target = folder / archive.removesuffix(".gz")
            if target.is_file():
                continue
            if (folder / archive).is_file():
                extract(folder / archive, target)
                continue
            if not fetch:
                raise DataError(f"{target} is missing (and so is {archive}). {missing_hint(folder)}")
            failures = []
            for mirror in mirrors or source.mirrors:
                try:
                    _fetch(
                        f"{mirror}{archive}", archive_md5, target, KNOWN_MD5.get(dataset, {}).get(target.name), timeout
                    )
                    break
                except (OSError, DataError) as err:
                    failures.append(f"{mirror}{archive}: {err}")
            else:
                raise DataError(f"Could not download {archive} ({'; '.join(failures)}). {missing_hint(folder)}")
    except BaseException:
        for empty in (d for d in created if d.is_dir() and not any(d.iterdir())):
            empty.rmdir()
        raise


def _fetch(url: str, archive_md5: str, target: Path, original_md5: str | None, timeout: float) -> None:
    """Download ``url`` into a scratch folder, waiting at most ``timeout`` seconds for any answer and ``20 *
    timeout`` for the whole file (a mirror that trickles bytes must not hold a run up either), then extract it."""
    deadline = time.monotonic() + 20 * timeout
    request = urllib.request.Request(url, headers={"User-Agent": "mnist-lightning"})
    with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as scratch:
        fetched = Path(scratch) / url.rsplit("/", 1)[-1]
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response, fetched.open("wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the transfer took longer than {20 * timeout:.0f} s")
        except urllib.error.URLError as err:
            raise OSError(f"{err.reason}") from None
        if original_md5 is None and (digest := calculate_md5(fetched)) != archive_md5:
            raise DataError(f"the archive's MD5 is {digest}, expected {archive_md5}")
        extract(fetched, target, original_md5)


def extract(archive: Path, target: Path, expected_md5: str | None = None) -> None:
    """Decompress ``archive`` into ``target``; ``target`` appears only complete and checked.

    gzip's own CRC catches a damaged archive; ``expected_md5`` (a download of MNIST's originals) checks the
    content too. Archives a user put there are not held to the mirrors' bytes (they may be recompressed): the
    IDX files they hold are verified when they are read, like any others.
    """
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=target.parent) as scratch:
        try:
            extracted = Path(extract_archive(archive, scratch))
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise DataError(
                f"{archive} is not a valid gzip archive ({err}). Delete it so that it is downloaded again, or "
                "point --data.data_dir at a folder with intact files."
            ) from None
        if expected_md5 is not None and (digest := calculate_md5(extracted)) != expected_md5:
            raise DataError(f"the extracted file's MD5 is {digest}, the original's is {expected_md5}")
        os.replace(extracted, target)
