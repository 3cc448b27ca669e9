"""Load test of the server (``mnist-serve``) on loopback: 16 clients posting canvas PNGs for 30 s.

    python bench/serve_load.py --ckpt PATH [--seconds 30] [--clients 16] [--max-batch-size 1 16] [--workers 1]

Starts one server per configuration on 127.0.0.1 (a free port), waits for ``/health``, then runs the clients
(threads with keep-alive ``http.client`` connections) until the time or ``--max-requests`` is up. Reports
failures (any non-200 answer or connection error), predictions/s, p50/p99 latency and the server's total RSS
(all its processes) after ~1k and ~10k requests. Bounded in count and time; never leaves the machine. Writes
``bench/results/serve_load.json``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import RESULTS, write_result
from PIL import Image, ImageDraw

CHECKPOINTS_AT = (1_000, 10_000)


def canvas_pngs(count: int, seed: int = 0) -> list[bytes]:
    """PNGs like the page sends: 280x280, white paper, a few thick black strokes."""
    rng = random.Random(seed)
    images = []
    for _ in range(count):
        image = Image.new("RGB", (280, 280), "white")
        points = [(rng.randint(50, 230), rng.randint(40, 240)) for _ in range(rng.randint(3, 6))]
        ImageDraw.Draw(image).line(points, fill="black", width=18, joint="curve")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, from /proc (Linux)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total / 1024


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    rss_at: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(port: int, images: list[bytes], stop: threading.Event, tally: Tally, server_pid: int, limit: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    rng = random.Random(threading.get_ident())
    while not stop.is_set():
        start = time.perf_counter()
        try:
            connection.request("POST", "/predict", rng.choice(images), {"Content-Type": "image/png"})
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        elapsed = time.perf_counter() - start
        with tally.lock:
            tally.latencies.append(elapsed)
            tally.failures += not ok
            done = len(tally.latencies)
        if done in CHECKPOINTS_AT:
            tally.rss_at[done] = tree_rss_mb(server_pid)
        if done >= limit:
            stop.set()
    connection.close()


def start_server(ckpt: str, port: int, max_batch_size: int, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "mnist_lightning.commands.serve", "--ckpt", ckpt, "--port", str(port)]
    command += ["--max-batch-size", str(max_batch_size), "--workers", str(workers)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    os.killpg(server.pid, signal.SIGTERM)
    raise RuntimeError(f"the server did not become healthy: {server.stderr.read().decode()[-2000:]}")


def run(args: argparse.Namespace, max_batch_size: int, images: list[bytes]) -> dict:
    port = free_port()
    server = start_server(args.ckpt, port, max_batch_size, args.workers)
    tally, stop = Tally(), threading.Event()
    threads = [
        threading.Thread(target=client, args=(port, images, stop, tally, server.pid, args.max_requests))
        for _ in range(args.clients)
    ]
    try:
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        stop.wait(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        peak = tree_rss_mb(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    latencies = sorted(tally.latencies)
    return {
        "max_batch_size": max_batch_size,
        "requests": len(latencies),
        "failures": tally.failures,
        "per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "rss": {**tally.rss_at, len(latencies): peak},
    }


def write(results: list[dict], args: argparse.Namespace) -> None:
    rows = [
        [
            f"on (max {r['max_batch_size']})" if r["max_batch_size"] > 1 else "off",
            r["requests"],
            r["failures"],
            r["per_s"],
            r["p50_ms"],
            r["p99_ms"],
            ", ".join(f"{mb:.0f} MB @ {n:,}" for n, mb in sorted(r["rss"].items())),
        ]
        for r in results
    ]
    write_result(
        args.results,
        "serve_load",
        "Serving under load",
        [
            ["batching", "", ""],
            ["requests", ",d", ""],
            ["failures", "d", ""],
            ["predictions/s", ".0f", ""],
            ["p50", ".1f", " ms"],
            ["p99", ".1f", " ms"],
            ["server RSS after N requests", "", ""],
        ],
        rows,
        notes=[
            f"{args.clients} keep-alive clients on loopback post 280x280 canvas PNGs to `POST /predict` for "
            f"{args.seconds:g} s; {args.workers} inference worker(s); `--ckpt {args.ckpt}`. RSS sums the server's "
            "processes."
        ],
        raw={"runs": results},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="best, last or a checkpoint path (as for the server)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-requests", type=int, default=100_000, help="stop early after this many")
    parser.add_argument("--max-batch-size", type=int, nargs="+", default=[1, 16], help="configurations to compare")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON (default: bench/results)")
    args = parser.parse_args()
    images = canvas_pngs(64)
    results = [run(args, size, images) for size in args.max_batch_size]
    write(results, args)
    for result in results:
        print(result)


if __name__ == "__main__":
    main()
