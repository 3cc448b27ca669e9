"""The documentation as a user meets it: the documented server answers every documented ``curl``, and the site
builds strictly."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from doc_commands import as_run, ids, of_kind, with_examples
from helpers import REPO, free_port


@pytest.fixture
def workdir(trained: Path) -> Path:
    """A copy of the shared run with what the examples name."""
    return with_examples(trained)


@contextlib.contextmanager
def serving(line: str, workdir: Path, synthetic_dir: Path) -> Iterator[int]:
    """The documented serve command, on a free port, in the shared run's copy; yields the port once it answers."""
    port = free_port()
    script, *args = as_run(line, synthetic_dir)  # the console script pip installed next to this Python
    command = [str(Path(sys.executable).with_name(script)), *args, "--port", str(port)]
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            assert process.poll() is None, f"{line}: exited {process.returncode}: {process.stderr.read()[-2000:]}"
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            pytest.fail(f"{line}: not serving after 300 tries")
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.mark.parametrize(("where", "line"), of_kind("serve"), ids=ids(of_kind("serve")))
def test_serve_command_and_the_api_examples_run(where: str, line: str, workdir: Path, synthetic_dir: Path) -> None:
    """The server as documented, and every documented ``curl`` against it (a correction's only when it collects)."""
    assert shutil.which("curl"), "the API examples are checked with curl: apt-get install curl"
    collect = shlex.split(line, comments=True)
    collect = workdir / collect[collect.index("--collect") + 1] if "--collect" in collect else None
    with serving(line, workdir, synthetic_dir) as port:
        for _, curl in of_kind("curl"):
            if "/corrections" in curl and collect is None:
                continue
            call = curl.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            answer = subprocess.run(["bash", "-c", call], cwd=workdir, capture_output=True, text=True, timeout=60)
            assert answer.returncode == 0, f"{curl}: {answer.stderr}"
            assert answer.stdout.strip(), curl
            assert '"error"' not in answer.stdout, f"{curl}: {answer.stdout}"
    if collect is not None:
        assert len(list(collect.glob("7/*.png"))) == 1, "the documented correction is saved as DIR/7/<uuid4>.png"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """What CI checks: no broken link, anchor or include, no page left out of the navigation."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()
    results = (tmp_path / "site" / "results" / "index.html").read_text()
    assert "Start-up: every command against the import floor" in results
    index = json.loads((tmp_path / "site" / "search" / "search_index.json").read_text())
    for query, page in (("--collect", "serving/"), ("extra_dirs", "data/"), ("init_from", "serving/")):
        assert page in pages_found(index, query), f"the site's search finds {query} on {page}"


def pages_found(index: dict, query: str) -> set[str]:
    """The pages whose every word matches the query's, split as the site's search splits them (its separator)."""
    separator = re.compile(index["config"]["separator"])

    def words(text: str) -> set[str]:
        return {word.lower() for word in separator.split(html.unescape(re.sub(r"<[^>]+>", " ", text))) if word}

    found: dict[str, set[str]] = {}
    for doc in index["docs"]:
        found.setdefault(doc["location"].split("#")[0], set()).update(words(doc["title"] + " " + doc["text"]))
    return {page for page, text in found.items() if words(query) <= text}


def test_no_code_block_scrolls_sideways_at_desktop_or_phone_width(browser, tmp_path: Path) -> None:
    """Long commands wrap, clear of the copy button, rather than hiding their ends behind a scroll bar."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [str(mkdocs), "build", "--site-dir", str(tmp_path / "site")]
    subprocess.run(command, cwd=REPO, capture_output=True, env=environment, timeout=300, check=True)
    pages = sorted((tmp_path / "site").glob("*/index.html"))
    assert len(pages) >= 10
    for width in (1280, 390):
        browser.set_window_size(width, 900)
        for page in pages:
            browser.get(page.as_uri())
            scrolling = browser.execute_script(
                "return [...document.querySelectorAll('pre > code')]"
                ".filter(code => code.scrollWidth > code.clientWidth + 1).length"
            )
            assert scrolling == 0, f"{page.parent.name} at {width} px"
