"""What no request body or method may do to the server, in-process: cost it unbounded time in the API server's
event loop (many-part multipart, many-value or deeply nested JSON), or get a 500 or a non-JSON answer (float
images holding NaN, a GET on ``/predict``). A real server under the worst bodies and a NUL byte in a header:
``tests/system/test_serve_process.py``."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import best_checkpoint
from litserve.utils import wrap_litserve_start
from PIL import Image
from serve_helpers import assert_error, drawing

from mnist_lightning.serve import body
from mnist_lightning.serve.app import create_server
from mnist_lightning.serve.body import MAX_BODY_BYTES, MAX_JSON_PUNCTUATION, MAX_PARTS

BOUNDARY = "b0undary"


def multipart(parts: int, headers: int = 1, file_last: bool = True) -> bytes:
    """A ``multipart/form-data`` body of ``parts`` tiny fields with ``headers`` header lines each, then the file."""
    field = b"--%s\r\n" % BOUNDARY.encode() + b"X-Note: n\r\n" * (headers - 1)
    field += b'Content-Disposition: form-data; name="note"\r\n\r\nv\r\n'
    image = b"--%s\r\n" % BOUNDARY.encode() + b'Content-Disposition: form-data; name="image"; filename="a.png"\r\n'
    image += b"Content-Type: image/png\r\n\r\n" + drawing() + b"\r\n"
    fields = field * parts
    return (fields + image if file_last else image + fields) + b"--%s--\r\n" % BOUNDARY.encode()


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
JSON = {"Content-Type": "application/json"}


def worst_bodies() -> list[tuple[bytes, dict[str, str]]]:
    """Bodies just under the 5 MB limit that cost the most per byte to parse: 100k tiny parts, 2.5M numbers,
    2.5M nested brackets, a 5 MB number."""
    tiny_part = b"--%s\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n" % BOUNDARY.encode()
    parts = tiny_part * ((MAX_BODY_BYTES - 100) // len(tiny_part))
    numbers = b'{"image": "", "x": [' + b"0," * ((MAX_BODY_BYTES - 100) // 2) + b"0]}"
    nested = b"[" * (MAX_BODY_BYTES // 2) + b"]" * (MAX_BODY_BYTES // 2)
    number = b'{"image": "", "x": ' + b"1" * (MAX_BODY_BYTES - 100) + b"}"
    return [(parts, MULTIPART), (numbers, JSON), (nested, JSON), (number, JSON)]


@pytest.fixture(scope="module")
def client(shared_run: Path) -> Iterator[TestClient]:
    """The API in-process (LitServe's test wrapper starts one inference worker), as configured by default."""
    server = create_server(best_checkpoint(shared_run))
    with wrap_litserve_start(server) as started, TestClient(started.app) as test_client:
        yield test_client


# --- bounded unpacking -------------------------------------------------------------------------------------


def test_a_multipart_file_among_a_few_fields_is_read(client: TestClient) -> None:
    for file_last in (True, False):
        response = client.post("/predict", content=multipart(MAX_PARTS - 1, file_last=file_last), headers=MULTIPART)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (multipart(MAX_PARTS + 1), f"Maximum number of fields is {MAX_PARTS}"),
        (multipart(75_000), f"Maximum number of fields is {MAX_PARTS}"),
        (multipart(1, headers=17), "Invalid multipart data"),  # python-multipart takes 8 header lines a part
        (multipart(1, headers=100_000), "Invalid multipart data"),
    ],
    ids=["17-parts", "75k-parts", "17-headers", "100k-headers"],
)
def test_multipart_parts_and_headers_are_bounded(client: TestClient, body: bytes, words: str) -> None:
    assert len(body) < MAX_BODY_BYTES
    assert_error(client.post("/predict", content=body, headers=MULTIPART), 400, words)


def test_a_multipart_content_type_without_a_boundary_is_refused(client: TestClient) -> None:
    response = client.post("/predict", content=multipart(1), headers={"Content-Type": "multipart/form-data"})
    assert_error(response, 400, "boundary")


def test_many_part_bodies_are_refused_at_the_first_part_past_the_limit(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    begun = []
    start_part = body.MultiPartParser.on_part_begin
    monkeypatch.setattr(body.MultiPartParser, "on_part_begin", lambda parser: begun.append(start_part(parser)))
    assert_error(client.post("/predict", content=worst_bodies()[0][0], headers=MULTIPART), 400, "fields")
    assert len(begun) == MAX_PARTS + 1  # of about 100,000


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b'{"image": "", "x": [' + b"0," * 5000 + b"0]}", f"at most {MAX_JSON_PUNCTUATION}"),
        (b"[" * 100_000 + b"]" * 100_000, f"at most {MAX_JSON_PUNCTUATION}"),
        (b"[" * 20 + b"]" * 20, "must be an object"),
        (b'{"image": "", "x": ' + b"1" * 5000 + b"}", "malformed JSON"),
        (b'{"image": "\xff"}', "malformed JSON"),
        (b'{"image": "", "image": ""}', '"image" twice'),
    ],
    ids=["many-values", "deeply-nested", "nested", "huge-number", "not-utf8", "repeated-key"],
)
def test_json_is_bounded_and_every_malformed_document_is_a_400(client: TestClient, document: bytes, words: str) -> None:
    assert_error(client.post("/predict", content=document, headers=JSON), 400, words)


def test_json_bodies_are_unpacked_off_the_event_loop(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = []
    unpack = body.from_json

    def watched(data: bytes) -> bytes:
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()  # none in this thread: the event loop goes on serving meanwhile
        threads.append(threading.current_thread().name)
        return unpack(data)

    monkeypatch.setattr(body, "from_json", watched)
    document = json.dumps({"image": base64.b64encode(drawing()).decode()})
    assert client.post("/predict", content=document, headers=JSON).status_code == 200
    assert len(threads) == 1


# --- 4xx, never 500 ----------------------------------------------------------------------------------------


def float_tiff(value: float) -> bytes:
    """A 28x28 float ("F" mode) TIFF of a bar, with one pixel set to ``value``."""
    pixels = np.zeros((28, 28), np.float32)
    pixels[5:23, 12:16] = 1.0
    pixels[0, 0] = value
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="F").save(buffer, format="TIFF")
    return buffer.getvalue()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_a_float_image_holding_non_finite_values_is_a_422(client: TestClient, value: float) -> None:
    response = client.post("/predict", content=float_tiff(value), headers={"Content-Type": "image/tiff"})
    assert_error(response, 422, "")
    assert client.post("/predict", content=float_tiff(0.5), headers={"Content-Type": "image/tiff"}).status_code == 200


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_on_predict_are_405_with_allow(client: TestClient, method: str) -> None:
    response = client.request(method, "/predict")
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"
    if method != "HEAD":
        assert_error(response, 405, f"{method} is not allowed on /predict: use POST")


def test_a_post_to_a_page_route_is_405_and_unknown_paths_stay_404(client: TestClient) -> None:
    response = client.post("/health")
    assert_error(response, 405, "use GET")
    assert "GET" in response.headers["allow"]
    assert_error(client.get("/no-such-page"), 404, "not found")
    assert_error(client.post("/no-such-page"), 405, "method not allowed")  # the page's files are read-only
    assert client.get("/").status_code == 200
