"""Load test of the server (``mnist-serve``) on loopback: 16 clients posting canvas PNGs for 30 s.

    python bench/serve_load.py --ckpt PATH [--seconds 30] [--clients 16] [--max-batch-size 1 16] [--workers 1]
    python bench/serve_load.py --ckpt PATH --hostile [--seconds 30] [--clients 16]

Starts one server per configuration on 127.0.0.1 (a free port), waits for ``/health``, then runs the clients
(threads with keep-alive ``http.client`` connections) until the time or ``--max-requests`` is up. Reports
failures (any non-200 answer or connection error), predictions/s, p50/p99 latency and the server's total RSS
(all its processes) after ~1k and ~10k requests. Bounded in count and time; never leaves the machine. Writes
``bench/results/serve_load.json``.

``--hostile`` checks that the server (with ``--collect``) stays small and responsive while the clients alternate
``POST /predict`` and ``POST /corrections`` with small PNGs of huge images (at, just under and just over the pixel
limit) and canvas PNGs: it passes when its memory (PSS) stays under 1.5 GB, ``GET /health`` (timed every 0.25 s on
its own connection) answers within 1 s, and no request gets a 5xx but 503 or loses its connection. Writes
``bench/results/serve_hostile.json``.
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
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import RESULTS, median, write_result
from PIL import Image, ImageDraw

from mnist_lightning.images import MAX_PIXELS

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


def exchange(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None, kind: str) -> int | None:
    """The status of one request, or None when the connection failed (closed: the next request reconnects)."""
    try:
        conn.request(method, path, body, {"Content-Type": kind} if kind else {})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        conn.close()
        return None


def tree_rss_mb(pid: int, proportional: bool = False) -> float:
    """Resident memory of ``pid`` and all its descendants, from /proc (Linux). ``proportional`` (PSS): a page that
    processes share (the API servers are forks of the main process) counts once in all, not once in each."""
    (source, key), total, pending = ("smaps_rollup", "Pss:") if proportional else ("status", "VmRSS:"), 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/{source}").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith(key)))
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
        ok = exchange(connection, "POST", "/predict", rng.choice(images), "image/png") == 200
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


def start_server(ckpt: str, port: int, max_batch_size: int, workers: int, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "mnist_lightning.commands.serve", "--ckpt", ckpt, "--port", str(port)]
    command += ["--max-batch-size", str(max_batch_size), "--workers", str(workers), *extra]
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


RSS_LIMIT_MB, HEALTH_LIMIT_S, PROBE_EVERY_S = 1500, 1.0, 0.25
STATUS_CLASSES = ("2xx", "4xx", "503", "5xx other", "connection errors")


def stroked_png(mode: str, width: int, height: int) -> bytes:
    """A white picture with one thick black stroke: a few tens of KB of PNG, ``width x height`` once decoded."""
    image = Image.new(mode, (width, height), "white")
    points = [(width // 4, height // 5), (width // 2, height * 4 // 5), (width * 3 // 4, height // 4)]
    ImageDraw.Draw(image).line(points, fill="black", width=max(width, height) // 15)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def hostile_pngs() -> dict[str, bytes]:
    """The worst images a client can send cheaply: at, just under and just over the pixel limit, and a canvas."""
    side, height, width = int(MAX_PIXELS**0.5), 3000, MAX_PIXELS // 3000
    return {
        f"RGBA {side}x{side}": stroked_png("RGBA", side, side),
        f"RGB {width}x{height} just under": stroked_png("RGB", width, height),
        f"RGB {width + 1}x{height} just over": stroked_png("RGB", width + 1, height),
        "canvas 280x280": canvas_pngs(1)[0],
    }


def status_class(status: int | None) -> str:
    if status is None:
        return "connection errors"
    return "503" if status == 503 else {2: "2xx", 4: "4xx"}.get(status // 100, "5xx other")


def correction(label: int, image: bytes) -> tuple[bytes, str]:
    """A ``POST /corrections`` multipart body (fields ``label`` and ``image``) and its Content-Type."""
    boundary = "hostile-bench-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="label"\r\n\r\n{label}\r\n--{boundary}\r\n'
        'Content-Disposition: form-data; name="image"; filename="digit.png"\r\nContent-Type: image/png\r\n\r\n'
    )
    return head.encode() + image + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@dataclass
class HostileTally:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # "endpoint image" -> status class -> count
    health_s: list[float | None] = field(default_factory=list)  # None: no 200 answer
    rss_mb: list[float] = field(default_factory=list)
    pss_mb: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, status: int | None) -> int:
        with self.lock:
            self.counts.setdefault(key, dict.fromkeys(STATUS_CLASSES, 0))[status_class(status)] += 1
            return sum(sum(row.values()) for row in self.counts.values())


def hostile_client(
    port: int, images: dict[str, bytes], stop: threading.Event, tally: HostileTally, limit: int, first: int
) -> None:
    """Alternate ``/predict`` and ``/corrections``, cycling through the images (each client from its own one)."""
    connection, kinds, sent = http.client.HTTPConnection("127.0.0.1", port, timeout=30), list(images), first
    while not stop.is_set():
        kind = kinds[(sent // 2) % len(kinds)]
        if sent % 2:
            path, (body, content_type) = "/corrections", correction(sent % 10, images[kind])
        else:
            path, body, content_type = "/predict", images[kind], "image/png"
        sent += 1
        if tally.add(f"{path} {kind}", exchange(connection, "POST", path, body, content_type)) >= limit:
            stop.set()
    connection.close()


def prober(port: int, server_pid: int, stop: threading.Event, tally: HostileTally) -> None:
    """``GET /health`` and the server's RSS every :data:`PROBE_EVERY_S`, on a connection of its own."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        tick = time.perf_counter()
        ok = exchange(connection, "GET", "/health", None, "") == 200
        took, rss, pss = time.perf_counter() - tick, tree_rss_mb(server_pid), tree_rss_mb(server_pid, True)
        with tally.lock:
            tally.health_s.append(took if ok else None)
            tally.rss_mb.append(rss)
            tally.pss_mb.append(pss)
        stop.wait(max(0.0, PROBE_EVERY_S - (time.perf_counter() - tick)))
    connection.close()


def run_hostile(args: argparse.Namespace) -> dict:
    images, port = hostile_pngs(), free_port()
    tally, stop, probing = HostileTally(), threading.Event(), threading.Event()
    with tempfile.TemporaryDirectory(prefix="serve-hostile-") as collect:
        server = start_server(args.ckpt, port, 1, args.workers, "--collect", collect)
        idle_mb = {"rss": tree_rss_mb(server.pid), "pss": tree_rss_mb(server.pid, True)}
        threads = [threading.Thread(target=prober, args=(port, server.pid, probing, tally))] + [
            threading.Thread(target=hostile_client, args=(port, images, stop, tally, args.max_requests, index))
            for index in range(args.clients)
        ]
        try:
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            stop.wait(args.seconds)
            stop.set()
            for thread in threads[1:]:
                thread.join()
            probing.set()
            threads[0].join()
            elapsed = time.perf_counter() - start
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        saved = sum(1 for _ in Path(collect).rglob("*.png"))
    totals = {name: sum(row[name] for row in tally.counts.values()) for name in STATUS_CLASSES}
    health = [took for took in tally.health_s if took is not None]
    peak_mb = {"rss": max([idle_mb["rss"], *tally.rss_mb]), "pss": max([idle_mb["pss"], *tally.pss_mb])}
    failed_probes, slowest = len(tally.health_s) - len(health), max(health, default=None)
    checks = {
        "peak memory (PSS) < 1500 MB": peak_mb["pss"] < RSS_LIMIT_MB,
        "/health always 200 within 1 s": slowest is not None and slowest < HEALTH_LIMIT_S and not failed_probes,
        "no 5xx but 503": totals["5xx other"] == 0,
        "no connection errors": totals["connection errors"] == 0,
    }
    return {
        "seconds": elapsed,
        "totals": totals,
        "by_request": dict(sorted(tally.counts.items())),
        "image_bytes": {kind: len(data) for kind, data in images.items()},
        "corrections_saved": saved,
        "health": {"probes": len(tally.health_s), "failed": failed_probes, "p50_s": median(health), "max_s": slowest},
        "memory_mb": {"idle": idle_mb, "peak": peak_mb},
        "pss_mb_each_probe": [round(mb) for mb in tally.pss_mb],
        "checks": checks,
        "passed": all(checks.values()),
    }


def write_hostile(result: dict, args: argparse.Namespace) -> None:
    health, idle, peak = result["health"], result["memory_mb"]["idle"], result["memory_mb"]["peak"]
    figures = [None if s is None else 1000 * s for s in (health["p50_s"], health["max_s"])] + [peak["pss"], peak["rss"]]
    rows = []
    for path in ("/predict ", "/corrections ", "/"):  # a key is "<endpoint> <image>"
        counts = [
            sum(row[name] for key, row in result["by_request"].items() if key.startswith(path))
            for name in STATUS_CLASSES
        ]
        label = "all" if path == "/" else f"`POST {path.strip()}`"
        rows.append([label, sum(counts), *counts, *(figures if path == "/" else [None] * 4)])
    sizes = ", ".join(f"{kind} ({size / 1024:.0f} KB)" for kind, size in result["image_bytes"].items())
    notes = [
        f"{args.clients} keep-alive clients on loopback alternate `POST /predict` and `POST /corrections` (the server "
        f"runs with `--collect` into a temporary folder) for {result['seconds']:.0f} s, cycling through PNGs of "
        f"{sizes}; the pixel limit is {MAX_PIXELS:,}. One prober on its own connection times `GET /health` and sums "
        f"the memory of the server's processes every {PROBE_EVERY_S:g} s ({health['probes']} probes, "
        f"{health['failed']} failed); idle: {idle['pss']:.0f} MB PSS, {idle['rss']:.0f} MB RSS. "
        f"{result['corrections_saved']} corrections were saved. `--ckpt {args.ckpt}`.",
        "The bound is on PSS, each page counted once: the RSS sum counts the pages that the API servers (forks of "
        "the main process) share with it once per process, and is over 1.5 GB before any request.",
        "Passes when: " + "; ".join(f"{name} ({'yes' if ok else 'NO'})" for name, ok in result["checks"].items()) + ".",
    ]
    if (load := os.getloadavg()[0]) > 2:
        notes.append(f"The machine was busy with other work (load average {load:.1f}): the latencies are pessimistic.")
    columns = [["requests", "", ""], *([name, ",d", ""] for name in ("all", *STATUS_CLASSES))]
    columns += [["/health p50", ".0f", " ms"], ["/health max", ".0f", " ms"], ["peak PSS", ".0f", " MB"]]
    columns.append(["peak RSS sum", ".0f", " MB"])
    write_result(
        args.results, "serve_hostile", "Serving under hostile load", columns, rows, notes, result, result["passed"]
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
    parser.add_argument("--hostile", action="store_true", help="worst-case images, /health and RSS checked")
    args = parser.parse_args()
    if args.hostile:
        result = run_hostile(args)
        write_hostile(result, args)
        print({key: value for key, value in result.items() if key not in ("by_request", "pss_mb_each_probe")})
        sys.exit(0 if result["passed"] else 1)
    images = canvas_pngs(64)
    results = [run(args, size, images) for size in args.max_batch_size]
    write(results, args)
    for result in results:
        print(result)


if __name__ == "__main__":
    main()
