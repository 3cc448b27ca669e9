"""The server's time budget per image: an image that takes too long to read is answered with a 422 in one line,
the worker moves on to the next request, and ``/health`` answers meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import best_checkpoint
from litserve.utils import wrap_litserve_start
from serve_helpers import assert_error, drawing

from mnist_lightning.serve.app import Digit, DigitAPI, Refused, create_server
from mnist_lightning.serve.budget import OverBudget, time_budget

SLOW = b"slow"
PNG = {"Content-Type": "image/png"}
BUDGET_S = 1.0


class SlowDigitAPI(DigitAPI):
    """Reads the body ``slow`` for ever, as a preprocessing bug or a pathological image would (a loop of Python
    and short C calls); every other body as usual. Defined at module level: the worker process imports it."""

    def read_image(self, data: bytes) -> Digit | Refused:
        while data == SLOW:
            time.sleep(0.01)
            sum(range(10_000))
        return super().read_image(data)


@pytest.fixture(scope="module")
def slow_client(shared_run: Path) -> Iterator[TestClient]:
    server = create_server(best_checkpoint(shared_run), image_timeout=BUDGET_S, api_class=SlowDigitAPI)
    with wrap_litserve_start(server) as started, TestClient(started.app) as test_client:
        deadline = time.monotonic() + 60
        while test_client.get("/health").status_code != 200:  # 503 until the worker has loaded the model
            assert time.monotonic() < deadline, "the inference worker did not start within 60 s"
            time.sleep(0.1)
        yield test_client


def test_an_image_over_the_budget_is_a_422_and_the_next_request_is_served(slow_client: TestClient) -> None:
    done = threading.Event()
    health = []

    def watch() -> None:
        while not done.is_set():
            started = time.monotonic()
            assert slow_client.get("/health").status_code == 200
            health.append(time.monotonic() - started)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(slow_client.post, "/predict", content=SLOW, headers=PNG)
            time.sleep(0.2)  # queued behind the slow one: one worker, batching off
            good = pool.submit(slow_client.post, "/predict", content=drawing(), headers=PNG)
            slow_answer, good_answer = slow.result(60), good.result(60)  # without a budget: TimeoutError
    finally:
        done.set()
        watcher.join()
    assert_error(slow_answer, 422, f"took over {BUDGET_S:g} s to read")
    assert good_answer.status_code == 200, good_answer.text
    assert health
    assert max(health) < 1.0, sorted(health)[-5:]


def forever() -> None:
    while True:
        time.sleep(0.01)


def test_the_budget_interrupts_the_work_and_then_is_gone() -> None:
    with pytest.raises(OverBudget), time_budget(0.05):
        forever()
    with time_budget(0.05):
        pass
    time.sleep(0.1)  # an expired budget raises nothing later


def test_no_budget_outside_the_main_thread() -> None:
    """Signals are handled in the main thread only: elsewhere the work runs as it is, without an error."""
    results = []

    def work() -> None:
        with time_budget(0.01):
            time.sleep(0.05)
            results.append("finished")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results == ["finished"]
