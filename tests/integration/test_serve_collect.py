"""Corrections (``--collect DIR``) in-process: a drawing and its digit are saved as sent, in ImageFolder layout,
atomically and within bounds; every bad correction is a one-line 4xx that writes nothing; several clients at once
lose nothing."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from helpers import best_checkpoint
from litserve.utils import wrap_litserve_start
from PIL import Image
from serve_helpers import (
    REPO,
    assert_error,
    assert_saved_as_sent,
    distinct_drawings,
    drawing,
    saved_files,
)

from mnist_lightning.commands import serve
from mnist_lightning.commands.runner import run
from mnist_lightning.serve.app import create_server
from mnist_lightning.serve.collect import locked, open_collection, save, usage

ARTIFACTS = REPO / "tests" / "artifacts"
ONE = [(140, 40), (140, 240)]
FOUR = [(180, 240), (180, 40), (60, 170), (220, 170)]


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def blank() -> bytes:
    return png(Image.new("RGB", (280, 280), "white"))


@pytest.fixture(scope="module")
def server_app(shared_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The API in-process, collecting into a folder that each test replaces with its own (``collect``)."""
    folder = open_collection(tmp_path_factory.mktemp("unused-corrections"))
    server = create_server(best_checkpoint(shared_run), collection=folder)
    with wrap_litserve_start(server) as started, TestClient(started.app) as test_client:
        yield test_client


@pytest.fixture
def collect(server_app: TestClient, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    """The in-process client, collecting into a fresh folder with the default limits."""
    state = server_app.app.state
    saved = state.collection
    state.collection = open_collection(tmp_path / "corrections")
    yield server_app, state.collection.folder
    state.collection = saved


def limit(client: TestClient, **limits: int) -> None:
    client.app.state.collection = dataclasses.replace(client.app.state.collection, **limits)


def test_a_correction_is_saved_as_sent_in_imagefolder_layout(collect: tuple[TestClient, Path]) -> None:
    client, folder = collect
    sent = drawing()
    response = client.post("/corrections", data={"label": "7"}, files={"image": ("../../../etc/x.png", sent)})
    assert response.status_code == 201, response.text
    answer = response.json()
    (path,) = assert_saved_as_sent(folder, {"7": [sent]})
    assert answer == {"saved": f"7/{path.name}", "label": "7", "files": 1, "bytes": len(sent)}
    four = drawing(FOUR)
    document = {"label": "4", "image": "data:image/png;base64," + base64.b64encode(four).decode()}
    response = client.post("/corrections", json=document)
    assert response.status_code == 201, response.text
    assert response.json()["files"] == 2
    assert response.json()["bytes"] == len(sent) + len(four)
    assert len(assert_saved_as_sent(folder, {"7": [sent], "4": [four]})) == 2


def test_info_says_where_corrections_go_and_the_limits(collect: tuple[TestClient, Path]) -> None:
    client, folder = collect
    info = client.get("/info").json()
    assert info["collect"] == {
        "folder": folder.name,  # not where it lies on the server's disk: every visitor reads this
        "max_files": 10_000,
        "max_bytes": 200 * 2**20,
        "max_image_bytes": 2**20,
    }
    assert info["model"]["model_class"] == "LitLogReg"  # LitServe's own sections are kept
    assert "workers_per_device" in info["server"]


def test_collecting_is_off_by_default(collect: tuple[TestClient, Path], shared_run: Path) -> None:
    assert create_server(best_checkpoint(shared_run)).app.state.collection is None
    client, folder = collect
    client.app.state.collection = None  # as create_server leaves it; the fixture puts the collection back
    assert client.get("/info").json()["collect"] is None
    response = client.post("/corrections", data={"label": "7"}, files={"image": ("seven.png", drawing())})
    assert_error(response, 403, "start it with --collect DIR")
    assert saved_files(folder) == []


def multipart(*fields: tuple[str, bytes, str | None]) -> tuple[bytes, dict[str, str]]:
    """A hand-made ``multipart/form-data`` body of ``(name, content, filename)`` fields, duplicates allowed."""
    body = b""
    for name, content, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--b0undary\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + b"--b0undary--\r\n", {"Content-Type": "multipart/form-data; boundary=b0undary"}


SEVEN_PNG = drawing()
BOMB = png(Image.new("1", (5000, 4000)))
BAD = [
    ("label-10", multipart(("label", b"10", None), ("image", SEVEN_PNG, "a.png")), 422, '"0" to "9"'),
    ("label-letter", multipart(("label", b"a", None), ("image", SEVEN_PNG, "a.png")), 422, '"0" to "9"'),
    ("label-empty", multipart(("label", b"", None), ("image", SEVEN_PNG, "a.png")), 422, '"0" to "9"'),
    ("label-path", multipart(("label", b"../7", None), ("image", SEVEN_PNG, "a.png")), 422, '"0" to "9"'),
    ("label-spaces", multipart(("label", b" 7", None), ("image", SEVEN_PNG, "a.png")), 422, '"0" to "9"'),
    ("label-arabic-7", multipart(("label", "٧".encode(), None), ("image", SEVEN_PNG, "a.png")), 422, '"0" to "9"'),
    (
        "label-json-int",
        (json.dumps({"label": 7, "image": base64.b64encode(SEVEN_PNG).decode()}).encode(), {}),
        422,
        "got 7",
    ),
    ("no-label", multipart(("image", SEVEN_PNG, "a.png")), 400, 'no "label" field'),
    ("no-image", multipart(("label", b"7", None)), 400, 'no "image" field'),
    (
        "two-labels",
        multipart(("label", b"7", None), ("label", b"1", None), ("image", SEVEN_PNG, "a.png")),
        400,
        "twice",
    ),
    (
        "two-images",
        multipart(("label", b"7", None), ("image", SEVEN_PNG, "a.png"), ("image", b"x", "b.png")),
        400,
        "twice",
    ),
    ("json-two-labels", (b'{"label": "7", "label": "1", "image": ""}', {}), 400, '"label" twice'),
    ("empty-image", multipart(("label", b"7", None), ("image", b"", "a.png")), 400, "no image"),
    ("not-an-image", multipart(("label", b"7", None), ("image", b"hello", "a.png")), 415, "PNG"),
    ("jpeg", multipart(("label", b"7", None), ("image", drawing(fmt="JPEG"), "a.jpg")), 415, "PNG"),
    ("truncated-png", multipart(("label", b"7", None), ("image", SEVEN_PNG[:300], "a.png")), 422, "not a readable"),
    ("blank-canvas", multipart(("label", b"7", None), ("image", blank(), "a.png")), 422, "blank"),
    ("over-16-megapixels", multipart(("label", b"7", None), ("image", BOMB, "a.png")), 422, "at most 16,000,000"),
    ("raw-png", (SEVEN_PNG, {"Content-Type": "image/png"}), 415, "multipart"),
]


@pytest.mark.parametrize(("case", "request_", "status", "words"), BAD, ids=[case for case, *_ in BAD])
def test_a_bad_correction_is_a_one_line_4xx_and_writes_nothing(
    collect: tuple[TestClient, Path], case: str, request_: tuple[bytes, dict], status: int, words: str
) -> None:
    client, folder = collect
    body, headers = request_
    headers = headers or {"Content-Type": "application/json"}
    before = sorted(folder.parent.rglob("*"))
    assert_error(client.post("/corrections", content=body, headers=headers), status, words)
    assert sorted(folder.parent.rglob("*")) == before
    assert client.post("/corrections", data={"label": "7"}, files={"image": ("a.png", SEVEN_PNG)}).status_code == 201


def test_the_bounds_hold_and_a_refused_correction_writes_nothing(collect: tuple[TestClient, Path]) -> None:
    client, folder = collect

    def post(image: bytes, label: str = "1") -> httpx2.Response:
        return client.post("/corrections", data={"label": label}, files={"image": ("a.png", image)})

    one, four = drawing(ONE), drawing(FOUR)
    limit(client, max_image_bytes=len(one))
    assert_error(post(four), 413, f"over the limit of {len(one):,} per correction")
    body_limit = client.app.state.collection.max_body_bytes
    assert_error(post(b"\x89PNG\r\n\x1a\n" + b"\0" * body_limit), 413, "request body is over")
    assert saved_files(folder) == []
    limit(client, max_image_bytes=2**20, max_files=2)
    assert post(one).status_code == post(four, "4").status_code == 201
    assert_error(post(one), 409, "holds 2 corrections, this server's limit of 2")
    limit(client, max_files=10, max_bytes=len(one) + len(four) + len(one) - 1)
    assert_error(post(one), 409, "would pass this server's limit")
    limit(client, max_bytes=len(one) + len(four) + len(one))
    assert post(one).status_code == 201
    assert usage(folder) == (3, 2 * len(one) + len(four))
    assert_saved_as_sent(folder, {"1": [one], "4": [four]})


def test_wrong_method_says_post(collect: tuple[TestClient, Path]) -> None:
    client, _ = collect
    response = client.get("/corrections")
    assert_error(response, 405, "use POST")
    assert response.headers["allow"] == "POST"


def test_clients_at_once_lose_nothing_and_the_count_holds(collect: tuple[TestClient, Path]) -> None:
    """4 clients x 10 corrections into a folder that takes 25: exactly 25 are saved, each whole."""
    client, folder = collect
    limit(client, max_files=25)
    images = distinct_drawings()

    def post(item: tuple[str, int]) -> int:
        label, index = item
        image = images[label][index]
        return client.post("/corrections", data={"label": label}, files={"image": ("a.png", image)}).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(post, [(str(c), i) for i in range(10) for c in range(4)]))
    assert sorted(statuses) == [201] * 25 + [409] * 15
    assert len(assert_saved_as_sent(folder, images)) == 25
    assert not list(folder.rglob(".*.partial"))


def test_a_save_waits_while_another_writer_holds_the_folder_lock(tmp_path: Path) -> None:
    """The lock is what keeps the count exact: a save must neither count nor write while another writer holds it."""
    collection = open_collection(tmp_path / "corrections")
    with ThreadPoolExecutor(1) as pool:
        with locked(collection.folder):
            saving = pool.submit(save, collection, "7", SEVEN_PNG)
            finished, _ = wait([saving], timeout=1)
            assert not finished
            assert saved_files(collection.folder) == []
        assert saving.result(timeout=30)["files"] == 1
    assert_saved_as_sent(collection.folder, {"7": [SEVEN_PNG]})


def test_the_command_refuses_an_unusable_collect_folder_in_one_line(
    shared_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "file").write_text("x")
    assert run(serve.main, ["--ckpt", str(best_checkpoint(shared_run)), "--collect", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --collect "), err
    assert "is a file" in err
    assert err.count("\n") == 1, err
