"""The digit server's API in-process (every answer, good and bad). Real servers and the page in a browser:
``tests/system/test_serve_process.py`` and ``test_serve_browser.py``."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from helpers import best_checkpoint
from litserve.utils import wrap_litserve_start
from PIL import Image
from serve_helpers import (
    assert_error,
    drawing,
)

from mnist_lightning.images import MAX_PIXELS
from mnist_lightning.inference import load_model, predict_images
from mnist_lightning.preprocessing import preprocess
from mnist_lightning.serve.app import create_server
from mnist_lightning.serve.body import MAX_BODY_BYTES


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
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css"), ("favicon.ico", "image/")):
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

    monkeypatch.setattr("tempfile.SpooledTemporaryFile.rollover", no_disk)  # memory until this moves it to disk
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
