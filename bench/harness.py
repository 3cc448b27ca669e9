"""What every benchmark shares: whole-process timing with peak memory, medians, the machine, and JSON out.

Each benchmark runs its contenders as their own processes (imports and start-up count), repeats them, and
writes ``bench/results/<name>.json``: the exact command line, the machine, the date, a table (columns with
their formats, rows of raw numbers) and the raw figures. ``python bench/report.py`` turns those files into
bench/RESULTS.md, so a figure is never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
PROBE_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH), str(REPO), os.environ.get("PYTHONPATH", "")])}
"""``train.py`` finds ``probe.EpochProbe`` (``--trainer.callbacks+=probe.EpochProbe``) on this path."""


@dataclass
class Run:
    """One finished process: when it was launched (epoch seconds), its wall time, peak RSS and output."""

    launched: float
    wall_s: float
    max_rss_mb: float
    stdout: str

    def json_lines(self) -> list[dict[str, Any]]:
        """Every line of its output that is a JSON object (the benchmark scripts' own records)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


def measure(command: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Run ``command`` in the repository to completion; a failure raises with the end of its error output."""
    launched, started = time.time(), time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(list(command), stdout=out, stderr=err, cwd=REPO, env=env, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        raise RuntimeError(f"{shlex.join(command)} failed with exit code {code}: {stderr.strip()[-2000:]}")
    return Run(launched, wall, usage.ru_maxrss / 1024, stdout)


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values (a contender that never got there)."""
    return statistics.median(values) if values else None


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def machine() -> dict[str, Any]:
    """What the figures depend on: the host, its CPU and cores, and the versions that run the math."""
    import lightning
    import torch

    return {
        "host": platform.node() or "unknown",
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
    }


def command_line() -> str:
    """This benchmark's command as typed from the repository root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    return shlex.join(["python", str(shown), *sys.argv[1:]])


def write_result(
    results: Path,
    name: str,
    title: str,
    columns: list[list[str]],
    rows: list[list[Any]],
    notes: Sequence[str] = (),
    raw: dict[str, Any] | None = None,
    passed: bool | None = None,
) -> Path:
    """Write ``results/<name>.json``. ``columns`` are ``[label, format spec, unit]`` (``[label, "", ""]`` for
    text); rows hold raw values in that order (None shows as "-")."""
    record = {
        "name": name,
        "title": title,
        "command": command_line(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "columns": columns,
        "rows": rows,
        "notes": list(notes),
        "passed": passed,
        "raw": raw or {},
    }
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def default_data_dir() -> str:
    shared = REPO.parent / "shared" / "data"
    return str(shared if shared.is_dir() else REPO / "data")


def parser(description: str | None, repeats: int = 3) -> argparse.ArgumentParser:
    """The options every benchmark takes: where the data is, how often to repeat, where the JSON goes."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="holds MNIST/raw (default: ../shared/data)")
    parser.add_argument("--repeats", type=int, default=repeats, help="runs of each contender; figures are medians")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON (default: bench/results)")
    return parser


def fit_command(data_dir: str, root: str, *extra: str) -> list[str]:
    """``python train.py fit`` into ``root``, quiet, on ``data_dir``."""
    where = ["--data.data_dir", data_dir, "--trainer.default_root_dir", root]
    return [sys.executable, "train.py", "fit", *where, "--trainer.enable_progress_bar", "false", *extra]


def probe_args(out: Path, evaluate: bool) -> list[str]:
    """Arguments that add ``probe.EpochProbe`` to a ``train.py fit`` (run it with ``env=PROBE_ENV``)."""
    callback = ["--trainer.callbacks+=probe.EpochProbe", "--trainer.callbacks.out", str(out)]
    return [*callback, "--trainer.callbacks.evaluate", str(evaluate).lower()]


def read_probe(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def accuracy_of_best(root: str, data_dir: str) -> float:
    """Test accuracy of the run's best checkpoint by validation, evaluated here without Lightning."""
    import torch

    from mnist_lightning import MNISTDataModule, load_model
    from mnist_lightning.checkpoint import resolve_checkpoint

    path, _ = resolve_checkpoint("best", Path(root) / "lightning_logs")
    model = load_model(path)
    images, labels = MNISTDataModule(data_dir=data_dir, download=False).split("test")
    with torch.no_grad():
        chunks = zip(images.split(1000), labels.split(1000), strict=True)
        right = sum(int((model(x).argmax(1) == y).sum()) for x, y in chunks)
    return right / len(labels)
