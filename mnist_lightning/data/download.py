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
from collections.abc import Sequence
from pathlib import Path

from mnist_lightning.data.idx import KNOWN_MD5, TORCHVISION_CLASSES, DatasetName, md5, missing_hint
from mnist_lightning.errors import DataError


def download(
    dataset: DatasetName,
    folder: Path,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Fetch the missing raw files of ``dataset`` into ``folder``, trying each mirror in turn."""
    source = TORCHVISION_CLASSES[dataset]
    mirrors = list(mirrors or source.mirrors)
    folder.mkdir(parents=True, exist_ok=True)
    for archive, archive_md5 in source.resources:
        target = folder / archive.removesuffix(".gz")
        if target.is_file():
            continue
        failures = []
        for mirror in mirrors:
            try:
                _fetch_archive(f"{mirror}{archive}", archive_md5, target, dataset, timeout)
                break
            except (OSError, DataError) as err:
                failures.append(f"  {mirror}{archive}: {err}")
        else:
            raise DataError(
                f"Could not download {archive} from any mirror:\n" + "\n".join(failures) + f"\n{missing_hint(folder)}"
            )


def _fetch_archive(url: str, archive_md5: str, target: Path, dataset: DatasetName, timeout: float) -> None:
    partial_gz = target.with_name(f".{target.name}.gz.partial")
    partial = target.with_name(f".{target.name}.partial")
    deadline = time.monotonic() + 20 * timeout
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "mnist-lightning"})
        with urllib.request.urlopen(request, timeout=timeout) as response, partial_gz.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the transfer took longer than {20 * timeout:.0f} s")
        if dataset not in KNOWN_MD5:  # MNIST's uncompressed originals are checked against their own MD5 below
            digest = md5(partial_gz.read_bytes())
            if digest != archive_md5:
                raise DataError(f"the archive's MD5 is {digest}, expected {archive_md5}")
        with gzip.open(partial_gz, "rb") as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        expected = KNOWN_MD5.get(dataset, {}).get(target.name)
        if expected is not None and md5(partial.read_bytes()) != expected:
            raise DataError(f"the extracted file's MD5 is not the original's {expected}")
        os.replace(partial, target)
    except (gzip.BadGzipFile, EOFError) as err:
        raise DataError(f"not a valid gzip archive ({err})") from None
    except urllib.error.URLError as err:
        raise OSError(f"{err.reason}") from None
    finally:
        partial_gz.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
