"""The digit server: the API in-process (every answer, good and bad), a real server under a short load and
against slow, aborted and oversized uploads, and the page in a real headless Chromium."""

from __future__ import annotations

import base64
import io
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
import torch
from fastapi.testclient import TestClient
from helpers import best_checkpoint, free_port
from litserve.utils import wrap_litserve_start
from PIL import Image
from serve_helpers import (
    REPO,
    SEVEN,
    assert_error,
    draw,
    drawing,
    raw_request,
    serve_command,
    shown_result,
    wait_until_serving,
)

from mnist_lightning.inference import UNSURE_BELOW, load_model, predict_images
from mnist_lightning.preprocess import MAX_PIXELS, preprocess
from mnist_lightning.serve.app import create_server
from mnist_lightning.serve.body import MAX_BODY_BYTES

ARTIFACTS = REPO / "tests" / "artifacts"


def blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (280, 280), "white").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(shared_run: Path) -> Iterator[TestClient]:
    """The API in-process (LitServe's test wrapper starts one inference worker), as configured by default."""
    server = create_server(best_checkpoint(shared_run))
    with wrap_litserve_start(server) as started, TestClient(started.app) as test_client:
        yield test_client


def test_predict_png_returns_label_probabilities_and_the_preprocessed_input(
    client: TestClient, shared_run: Path
) -> None:
    response = client.post("/predict", content=drawing(), headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = predict_images(load_model(best_checkpoint(shared_run)), Image.open(io.BytesIO(drawing())))
    assert body["label"] == int(expected.labels[0])
    assert torch.allclose(torch.tensor(body["probabilities"]), expected.probabilities[0], atol=1e-5)
    seen = torch.tensor(body["input"])
    assert seen.shape == (28, 28)
    assert torch.allclose(seen, preprocess(Image.open(io.BytesIO(drawing())))[0], atol=1e-3)


@pytest.mark.parametrize("encoding", ["jpeg", "multipart", "json", "data-url"])
def test_every_encoding_of_an_image_is_read(client: TestClient, encoding: str) -> None:
    png = drawing()
    reference = client.post("/predict", content=png, headers={"Content-Type": "image/png"}).json()
    b64 = base64.b64encode(png).decode()
    if encoding == "jpeg":
        response = client.post("/predict", content=drawing(fmt="JPEG"), headers={"Content-Type": "image/jpeg"})
    elif encoding == "multipart":
        response = client.post("/predict", files={"image": ("seven.png", png, "image/png")})
    elif encoding == "json":
        response = client.post("/predict", json={"image": b64})
    else:
        response = client.post("/predict", json={"image": f"data:image/png;base64,{b64}"})
    assert response.status_code == 200, response.text
    assert response.json()["label"] == reference["label"]
    if encoding != "jpeg":  # the same bytes however they travel
        assert response.json() == reference


def test_health_and_info(client: TestClient, shared_run: Path) -> None:
    assert client.get("/health").status_code == 200
    info = client.get("/info").json()["model"]
    checkpoint = best_checkpoint(shared_run)
    assert info["model_class"] == "LitLogReg"
    assert info["checkpoint"] == str(checkpoint)
    assert info["val_accuracy"] == pytest.approx(float(checkpoint.stem.rpartition("val_acc")[2]), abs=1e-4)
    assert info["test_accuracy"] is None  # fit does not record a test score in its checkpoints


def test_the_page_is_served_from_the_package(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert '<canvas id="pad"' in page.text
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = client.get(f"/{asset}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]
    assert "http" not in page.text.replace('lang="en"', "")  # no CDN: everything is local
    assert_error(client.get("/no-such-page"), 404, "not found")


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"{bad json", {"Content-Type": "application/json"}, 400, "malformed JSON"),
        (b'{"picture": "abc"}', {"Content-Type": "application/json"}, 400, '{"image"'),
        (b'["image"]', {"Content-Type": "application/json"}, 400, '{"image"'),
        (b'{"image": "not base64!"}', {"Content-Type": "application/json"}, 400, "base64"),
        (b"", {"Content-Type": "image/png"}, 400, "no image"),
        (b"hello", {"Content-Type": "text/plain"}, 415, "unsupported Content-Type 'text/plain'"),
        (b"hello", {}, 415, "unsupported Content-Type"),
        (b"this is not a picture", {"Content-Type": "image/png"}, 422, "not a readable image"),
        (drawing()[:300], {"Content-Type": "image/png"}, 422, "not a readable image"),
        (blank_png(), {"Content-Type": "image/png"}, 422, "blank"),
    ],
    ids=[
        "malformed-json",
        "no-image-key",
        "json-list",
        "bad-base64",
        "empty",
        "text",
        "no-type",
        "not-image",
        "truncated-png",
        "blank-canvas",
    ],
)
def test_bad_requests_get_one_line_json_errors(
    client: TestClient, body: bytes, headers: dict, status: int, words: str
) -> None:
    assert_error(client.post("/predict", content=body, headers=headers), status, words)
    assert client.post("/predict", content=drawing(), headers={"Content-Type": "image/png"}).status_code == 200


def test_multipart_without_a_file(client: TestClient) -> None:
    assert_error(client.post("/predict", data={"note": "hi"}, files={"x": ("", b"")}), 400, "no")
    assert_error(client.post("/predict", data={"note": "hi"}, headers={}), 415, "unsupported")


def test_large_multipart_upload_never_touches_the_disk(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_disk(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request body was about to be spooled to a temporary file")

    monkeypatch.setattr("starlette.formparsers.SpooledTemporaryFile", no_disk)
    monkeypatch.setattr("tempfile.SpooledTemporaryFile", no_disk)
    noise = Image.fromarray(torch.randint(0, 256, (900, 900, 3), dtype=torch.uint8).numpy())
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    assert 2**20 < len(buffer.getvalue()) < MAX_BODY_BYTES
    response = client.post("/predict", files={"image": ("noise.png", buffer.getvalue(), "image/png")})
    assert response.status_code in (200, 422), response.text  # read and judged (noise may be "blank"), not spooled


def test_decompression_bomb_is_refused_from_its_header(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("1", (5000, 4000)).save(buffer, format="PNG")  # 20 megapixels in a few kilobytes
    assert len(buffer.getvalue()) < 100_000
    response = client.post("/predict", content=buffer.getvalue(), headers={"Content-Type": "image/png"})
    assert_error(response, 422, f"at most {MAX_PIXELS:,} pixels")


def test_body_over_the_limit_says_the_limit(client: TestClient) -> None:
    response = client.post("/predict", content=b"\0" * (MAX_BODY_BYTES + 1), headers={"Content-Type": "image/png"})
    assert_error(response, 413, "5 MB limit")


# --- a real server on 127.0.0.1, serving a model trained on the real MNIST files -----------------------------


class LiveServer:
    def __init__(self, process: subprocess.Popen, port: int, banner: str) -> None:
        self.process, self.port, self.banner = process, port, banner
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def live(mnist_run: Path) -> Iterator[LiveServer]:
    """``python -m mnist_lightning.serve --ckpt best`` as a user starts it, but with batching on (the in-process
    tests cover the default, off) and an upload timeout of 1 s."""
    port = free_port()
    command = [sys.executable, "-m", "mnist_lightning.serve", "--ckpt", "best", "--root", str(mnist_run)]
    command += ["--port", str(port), "--upload-timeout", "1", "--max-batch-size", "8", "--batch-timeout", "0.02"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    banner = process.stdout.readline()
    wait_until_serving(process, port)
    yield LiveServer(process, port, banner)
    process.send_signal(signal.SIGTERM)
    process.wait(30)


def test_command_prints_the_address_and_serves_the_best_checkpoint(live: LiveServer) -> None:
    assert f"open http://127.0.0.1:{live.port}/" in live.banner
    assert "epoch" in live.banner  # the best checkpoint is named after its epoch
    assert httpx2.get(f"{live.url}/info").json()["model"]["checkpoint"] in live.banner


def test_declared_oversize_body_is_refused_before_it_is_sent(live: LiveServer) -> None:
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000000000\r\n\r\n"
    answer = raw_request(live.port, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"5 MB limit" in answer


def test_slow_and_aborted_uploads_leave_the_server_serving(live: LiveServer) -> None:
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n"
    started = time.monotonic()
    answer = raw_request(live.port, head, b"\x89PNG", wait_s=10)  # then nothing more: a stalled upload
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"longer than 1 s" in answer
    assert time.monotonic() - started < 8
    for _ in range(20):  # uploads that stop halfway and hang up
        with socket.create_connection(("127.0.0.1", live.port)) as sock:
            sock.sendall(head + drawing()[:100])
    response = httpx2.post(f"{live.url}/predict", content=drawing(), headers={"Content-Type": "image/png"})
    assert response.status_code == 200


def test_short_load_has_no_errors_and_bad_requests_do_not_spoil_a_batch(live: LiveServer) -> None:
    """300 concurrent requests, one in ten a blank canvas, against the default (batched) server."""
    good, blank = drawing(), blank_png()

    def post(i: int) -> tuple[bool, int]:
        is_blank = i % 10 == 0
        response = httpx2.post(
            f"{live.url}/predict", content=blank if is_blank else good, headers={"Content-Type": "image/png"}
        )
        return is_blank, response.status_code

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(post, range(300)))
    assert [status for is_blank, status in results if not is_blank] == [200] * 270
    assert [status for is_blank, status in results if is_blank] == [422] * 30


def test_sigterm_stops_every_process(mnist_run: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "mnist_lightning.serve", "--ckpt", "last", "--root", str(mnist_run)]
    process = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert b"last.ckpt" in process.stdout.readline()
    wait_until_serving(process, port)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert children
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    time.sleep(1)
    assert not [pid for pid in children if alive(pid)]


def alive(pid: str) -> bool:
    """A process that exists and is not a zombie (an exited child nobody has reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_unusable_checkpoint_is_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    for ckpt in (str(tmp_path / "junk.ckpt"), "best"):
        result = subprocess.run(
            [sys.executable, "-m", "mnist_lightning.serve", "--ckpt", ckpt, "--root", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert result.stderr.startswith("error: "), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


# --- the page in a real browser ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "pointer", "clear_with"), [(1280, 800, "mouse", "button"), (390, 844, "touch", "escape")]
)
def test_drawing_a_seven_shows_seven(
    browser, live: LiveServer, width: int, height: int, pointer: str, clear_with: str
) -> None:
    browser.set_window_size(width, height)
    browser.get(live.url + "/")
    browser.find_element("id", "clear").click()
    draw(browser, SEVEN, pointer)
    label, bars = shown_result(browser)
    assert label == "7"
    assert len(bars) == 5
    assert bars[0][0] == "7"
    percents = [float(value.rstrip("%")) for _, value in bars]
    assert percents == sorted(percents, reverse=True)
    assert percents[0] > 50
    status = browser.find_element("id", "status").text
    sure = percents[0] >= 100 * UNSURE_BELOW
    assert status == (f"It looks like a 7 ({bars[0][1]})." if sure else f"Not sure: 7 or {bars[1][0]}."), status
    fill, track = (
        browser.find_element("css selector", f"#bars li .{part}").size["width"] for part in ("fill", "track")
    )
    assert fill > 0.45 * track  # the top bar is drawn as long as its probability
    seen = browser.execute_script(
        "const d = document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data;"
        "let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s;"
    )
    assert seen > 0  # the 28x28 input is drawn
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"page-{width}x{height}.png"))
    if clear_with == "button":
        browser.find_element("id", "clear").click()
    else:
        from selenium.webdriver.common.keys import Keys

        browser.find_element("id", "pad").send_keys(Keys.ESCAPE)
    assert browser.find_element("id", "label").text == ""
    assert browser.find_elements("css selector", "#bars li") == []


def test_choosing_a_file_shows_its_prediction(browser, live: LiveServer, tmp_path: Path, mnist_run: Path) -> None:
    path = tmp_path / "one.png"
    path.write_bytes(drawing([(140, 40), (140, 240)]))
    expected = int(predict_images(load_model(best_checkpoint(mnist_run)), path).labels[0])
    browser.set_window_size(1280, 800)
    browser.get(live.url + "/")
    browser.find_element("id", "file").send_keys(str(path))
    label, bars = shown_result(browser)
    assert label == str(expected)
    assert bars[0][0] == str(expected)
    browser.find_element("id", "clear").click()
    browser.execute_script(DROP, base64.b64encode(path.read_bytes()).decode())
    assert shown_result(browser)[0] == str(expected)


DROP = """
const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
const files = new DataTransfer();
files.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
const drop = new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true });
document.getElementById("pad").dispatchEvent(drop);
"""


def test_page_errors_are_shown(browser, live: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_bytes(b"not an image")
    browser.get(live.url + "/")
    browser.find_element("id", "file").send_keys(str(path))
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda d: "not a readable image" in d.find_element("id", "status").text)


def test_without_collect_the_page_offers_no_corrections(browser, live: LiveServer) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live.url + "/")
    WebDriverWait(browser, 10).until(lambda d: d.find_element("id", "collecting").text)
    assert browser.find_element("id", "collecting").text == (
        "Corrections are off: start the server with --collect DIR to save the drawings it misreads."
    )
    draw(browser, SEVEN)
    shown_result(browser)
    assert not browser.find_element("id", "correct").is_displayed()


def test_an_unsure_answer_says_not_sure_and_names_both_digits(browser, mnist_run: Path, tmp_path: Path) -> None:
    """A checkpoint whose temperature flattens every answer under the threshold: the page must not claim a digit."""
    checkpoint = torch.load(best_checkpoint(mnist_run), weights_only=True)
    checkpoint["state_dict"]["temperature"] = torch.tensor(1000.0)
    hesitant = tmp_path / "hesitant.ckpt"
    torch.save(checkpoint, hesitant)
    port = free_port()
    command = serve_command(str(hesitant), port)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        wait_until_serving(process, port)
        browser.set_window_size(1280, 800)
        browser.get(f"http://127.0.0.1:{port}/")
        draw(browser, SEVEN)
        label, bars = shown_result(browser)
        status = browser.find_element("id", "status")
        assert status.text == f"Not sure: {label} or {bars[1][0]}."
        assert "unsure" in status.get_attribute("class")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "page-unsure.png"))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
