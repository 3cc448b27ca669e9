"""Helpers shared by the serve tests: canvases like the page sends, one-line error checks, a real server started
as a user starts it, spoken to over raw sockets on 127.0.0.1, and drawing on the page in a browser."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx2
import pytest
from PIL import Image, ImageDraw

from mnist_lightning.serve.collect import LOCK_NAME

REPO = Path(__file__).resolve().parents[1]
SEVEN = [(60, 60), (220, 60), (120, 240)]
"""A 7 on a 280x280 canvas, as polyline points."""


def drawing(points: list[tuple[int, int]] = SEVEN, fmt: str = "PNG", size: int = 280) -> bytes:
    """A canvas like the page sends: white paper, thick black strokes."""
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).line([(x * size // 280, y * size // 280) for x, y in points], fill="black", width=18)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def assert_error(response: httpx2.Response, status: int, words: str) -> None:
    """A ``status`` answer whose body is exactly ``{"error": "<one line mentioning words>"}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"]
    assert "\n" not in body["error"]
    assert words.lower() in body["error"].lower(), body["error"]


def serve_command(ckpt: str, port: int, *options: str) -> list[str]:
    """``mnist-serve`` as a user types it."""
    return [sys.executable, "-m", "mnist_lightning.commands.serve", "--ckpt", ckpt, "--port", str(port), *options]


def wait_until_serving(process: subprocess.Popen, port: int, limit_s: float = 90) -> None:
    """Poll ``/health`` until the server answers 200; kill it and fail the test after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.2)
    process.kill()
    error = process.stderr.read()[-2000:] if process.stderr is not None else ""
    pytest.fail(f"the server did not start within {limit_s:.0f} s: {error}")


def raw_request(port: int, head: bytes, body: bytes = b"", wait_s: float = 5.0) -> bytes:
    """Send bytes on a fresh connection; the answer (head and body), or what came before ``wait_s`` passed."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(head + body)
        while not complete(answer):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            answer += chunk
    return answer


def complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.lower().splitlines() if line.startswith(b"content-length:")]
    return bool(found) and bool(lengths) and len(body) >= int(lengths[0])


def draw(driver, points: list[tuple[int, int]], pointer: str = "mouse") -> None:
    """Draw a polyline given in 280x280 canvas units with pointer actions (mouse, touch or pen)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    pad = driver.find_element("id", "pad")
    scale = pad.size["width"] / 280
    actions = ActionBuilder(driver, mouse=PointerInput(pointer, pointer), duration=100)
    actions.pointer_action.move_to(pad, *offset(points[0], scale, pad.size)).pointer_down()
    for point in points[1:]:
        actions.pointer_action.move_to(pad, *offset(point, scale, pad.size))
    actions.pointer_action.pointer_up()
    actions.perform()


def offset(point: tuple[int, int], scale: float, size: dict) -> tuple[int, int]:
    """Selenium's offsets are from the element's centre."""
    return round(point[0] * scale - size["width"] / 2), round(point[1] * scale - size["height"] / 2)


def shown_result(driver, timeout: float = 10) -> tuple[str, list[tuple[str, str]]]:
    """The label and the bars (digit, percent) once a prediction is on the page."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.find_element("id", "label").text.strip())
    bars = driver.find_elements("css selector", "#bars li")
    return driver.find_element("id", "label").text, [
        (bar.get_attribute("data-digit"), bar.find_element("class name", "value").text) for bar in bars
    ]


def saved_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (hidden ones too), the collection's lock aside."""
    return sorted(path for path in folder.rglob("*") if path.is_file() and path != folder / LOCK_NAME)


def assert_saved_as_sent(folder: Path, sent: dict[str, bytes]) -> list[Path]:
    """Each file in ``folder`` is ``<digit>/<uuid4>.png``, byte for byte a PNG that was sent with that digit."""
    files = saved_files(folder)
    for path in files:
        assert path.parent.parent == folder
        assert path.suffix == ".png"
        assert uuid.UUID(path.stem).version == 4
        assert path.read_bytes() in sent[path.parent.name]
        with Image.open(path) as image:
            image.load()
    return files


def distinct_drawings() -> dict[str, list[bytes]]:
    """Ten different drawings for each of the labels 0-3: each saved file can be traced to the one request."""
    images = {
        str(digit): [drawing([(40 + 20 * digit, 40), (140, 240), (60 + i, 200)]) for i in range(10)]
        for digit in range(4)
    }
    assert len({image for group in images.values() for image in group}) == 40
    return images


class LiveServer:
    """A server process started as a user starts it, with the port it listens on and the first line it printed."""

    def __init__(self, process: subprocess.Popen, port: int, banner: str) -> None:
        self.process, self.port, self.banner = process, port, banner
        self.url = f"http://127.0.0.1:{port}"
