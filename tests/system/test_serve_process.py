"""``mnist-serve`` as a process: stopping it (SIGTERM, Ctrl+C) is quiet and exits 0, a port in
use is one line and exit code 2; a real server on 127.0.0.1 under a short load,
slow, aborted, oversized and the worst bodies, a NUL byte in a header, and corrections from two API server
processes."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from helpers import best_checkpoint, free_port
from PIL import Image
from serve_helpers import (
    REPO,
    LiveServer,
    assert_saved_as_sent,
    distinct_drawings,
    drawing,
    raw_request,
    serve_command,
    wait_until_serving,
)

from mnist_lightning.serve.body import MAX_BODY_BYTES


def restore_ctrl_c() -> None:
    """A child of a non-interactive shell may start with SIGINT ignored; a terminal's server does not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop", ["kill", "ctrl-c"])
def test_stopping_the_server_is_quiet_and_exit_code_0(shared_run: Path, stop: str) -> None:
    """``kill PID`` sends SIGTERM to the main process; Ctrl+C in a terminal sends SIGINT to its whole group."""
    port = free_port()
    process = subprocess.Popen(
        serve_command(str(best_checkpoint(shared_run)), port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,  # its own process group, as a terminal gives it
        preexec_fn=restore_ctrl_c,
    )
    assert process.stdout.readline().startswith("Loading ")
    wait_until_serving(process, port)
    assert process.stdout.readline().startswith("Serving ")  # the address, once the server answers
    if stop == "kill":
        process.send_signal(signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0
    assert err == ""
    assert out == ""


def test_stopping_the_server_while_it_starts_is_quiet_and_exit_code_143(shared_run: Path) -> None:
    """SIGTERM right after "Loading": the worker is still loading the model (seconds), and is stopped too."""
    command = serve_command(str(best_checkpoint(shared_run)), free_port())
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout.readline().startswith("Loading ")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert err == ""
    assert out == ""


SWALLOWED_STOP = """
import os, signal, time, weakref
from mnist_lightning.commands.serve import Stopped, stop_quietly
stop_quietly(os.getpid())
class Thing: ...
def callback(ref):
    os.kill(os.getpid(), signal.SIGTERM)  # handled inside the weakref callback, where Python swallows exceptions
thing = Thing()
ref = weakref.ref(thing, callback)
try:
    del thing
    time.sleep(5)
    print("still running")
except Stopped as stopped:
    print("stopped", stopped.exit_code)
"""


def test_a_stop_raised_where_python_swallows_it_still_stops() -> None:
    """The CI failure this guards against: SIGTERM during start-up landed in logging's weakref callback, Python
    printed "Exception ignored" and the server went on starting, never to stop."""
    result = subprocess.run(
        [sys.executable, "-c", SWALLOWED_STOP], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.stdout == "stopped 143\n", result.stdout + result.stderr[-2000:]
    assert "Exception ignored" not in result.stderr


def test_a_port_in_use_is_one_line_and_exit_code_2_before_any_announcement(shared_run: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = subprocess.run(
            serve_command(str(best_checkpoint(shared_run)), port), capture_output=True, text=True, timeout=120, cwd=REPO
        )
    assert result.returncode == 2
    assert result.stdout == ""  # no "Serving ... open http://..." pointing at the other server
    assert result.stderr.startswith(f"error: cannot serve on 127.0.0.1:{port} (Address already in use)")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "--port" in result.stderr


def blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (280, 280), "white").save(buffer, format="PNG")
    return buffer.getvalue()


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
    command = [sys.executable, "-m", "mnist_lightning.commands.serve", "--ckpt", "last", "--root", str(mnist_run)]
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


@pytest.mark.parametrize("collecting_server", [("--workers", "2", "--collect-max-files", "25")], indirect=True)
def test_clients_at_once_against_two_api_server_processes(collecting_server: tuple[str, Path]) -> None:
    """LitServe runs one API server process per worker: the folder's lock must hold across processes."""
    url, folder = collecting_server
    assert httpx2.get(f"{url}/info").json()["collect"]["max_files"] == 25
    images = distinct_drawings()

    def client(label: str) -> list[int]:
        with httpx2.Client() as session:
            return [
                session.post(f"{url}/corrections", data={"label": label}, files={"image": ("a.png", image)}).status_code
                for image in images[label]
            ]

    with ThreadPoolExecutor(4) as pool:
        statuses = [status for statuses in pool.map(client, images) for status in statuses]
    assert sorted(statuses) == [201] * 25 + [409] * 15
    assert len(assert_saved_as_sent(folder, images)) == 25


BOUNDARY = "b0undary"


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
def server(shared_run: Path) -> Iterator[str]:
    """``mnist-serve`` on a free port of 127.0.0.1; yields its URL."""
    port = free_port()
    command = serve_command(str(best_checkpoint(shared_run)), port)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    wait_until_serving(process, port)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(60)


def test_health_answers_within_a_second_while_the_worst_bodies_arrive(server: str) -> None:
    """Four clients send the costliest 5 MB bodies (16 in all) while ``/health`` is asked every 0.1 s."""
    bodies = worst_bodies() * 4
    done = threading.Event()
    latencies = []

    def watch() -> None:
        with httpx2.Client() as health:
            while not done.is_set():
                started = time.monotonic()
                assert health.get(f"{server}/health").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.1)

    def send(item: tuple[bytes, dict[str, str]]) -> int:
        return httpx2.post(f"{server}/predict", content=item[0], headers=item[1], timeout=60).status_code

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(send, bodies))
    finally:
        done.set()
        watcher.join()
    assert statuses == [400] * len(bodies)
    assert len(latencies) >= 3
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    assert httpx2.post(f"{server}/predict", content=drawing(), headers={"Content-Type": "image/png"}).status_code == 200


def test_a_nul_byte_in_a_header_is_a_4xx_and_the_server_goes_on(server: str) -> None:
    """uvicorn's HTTP parser refuses the request (a plain-text 400) before the app sees it: no app code can answer
    it in JSON. What matters is that it is a 4xx and that the server goes on serving."""
    port = int(server.rpartition(":")[2])
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\x00x\r\nContent-Length: 3\r\n\r\n"
    answer = raw_request(port, head, b"abc")
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert httpx2.get(f"{server}/health").status_code == 200
    assert httpx2.post(f"{server}/predict", content=drawing(), headers={"Content-Type": "image/png"}).status_code == 200
