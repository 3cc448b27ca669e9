"""The benchmarks write JSON through one harness, bench/RESULTS.md is generated from it, and the scripts run.

Every script runs as its own process, as a user types it (nothing here imports bench/); the training ones on a
few batches, so their figures mean nothing and only their shape and logic are checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, best_checkpoint
from PIL import Image

BENCH_ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def bench(script: str, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, f"bench/{script}", *map(str, args)]
    return subprocess.run(command, cwd=REPO, env=BENCH_ENV, capture_output=True, text=True, timeout=timeout)


def fake_result(name: str, **fields: object) -> dict:
    record = {
        "name": name,
        "title": f"The {name} table",
        "command": f"python bench/{name}.py --repeats 3",
        "machine": {"host": "box", "cpu": "Some CPU", "cores": 4, "python": "3.11", "torch": "2.9", "lightning": "2.6"},
        "date": "2026-12-01",
        "columns": [["run", "", ""], ["time", ".2f", " s"], ["accuracy", ".2%", ""]],
        "rows": [["a", 1.234, 0.99123], ["b", None, 0.5]],
        "notes": ["A note."],
        "passed": None,
        "raw": {},
    }
    return {**record, **fields}


def test_results_md_is_generated_from_the_json_with_provenance_and_never_invents_a_figure(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "parity.json").write_text(json.dumps(fake_result("parity", passed=False)))
    (results / "extra.json").write_text(json.dumps(fake_result("extra")))
    out = tmp_path / "RESULTS.md"
    done = bench("report.py", "--results", results, "--out", out)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    parity = text.split("## The parity table\n", 1)[1].split("\n## ", 1)[0]
    assert (
        "`python bench/parity.py --repeats 3` on box (Some CPU, 4 cores), Python 3.11, torch 2.9, Lightning 2.6, "
        "2026-12-01." in parity
    )
    assert "| a | 1.23 s | 99.12% |" in parity
    assert "| b | - | 50.00% |" in parity, "a figure not measured shows as -"
    assert "Check: **FAIL**." in parity
    assert "## The extra table" in text, "a benchmark the generator does not know is still shown"
    assert "Not measured yet: `python bench/startup.py --repeats 3` measures it." in text
    assert "Not measured yet: `python bench/peer.py --repeats 1` measures it." in text
    assert not re.search(r"\b\d\d:\d\d\b", text), "no times of day"
    assert len(text.splitlines()) <= 250


def test_the_generator_refuses_a_broken_result_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "startup.json").write_text("{not json")
    done = bench("report.py", "--results", tmp_path, "--out", tmp_path / "RESULTS.md")
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot read the results in")
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_committed_results_page_is_what_the_generator_makes_of_the_committed_json(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    assert bench("report.py", "--out", out).returncode == 0
    assert out.read_text() == (REPO / "bench" / "RESULTS.md").read_text(), "run python bench/report.py"


def test_a_benchmark_writes_its_command_machine_date_and_table_through_the_harness(tmp_path: Path) -> None:
    done = bench("preprocess_worst.py", "--repeats", "1", "--results", tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "preprocess_worst.json").read_text())
    assert record["command"] == f"python bench/preprocess_worst.py --repeats 1 --results {tmp_path}"
    assert {"host", "cpu", "cores", "python", "torch", "lightning"} <= set(record["machine"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", record["date"])
    rows = {row[0]: row for row in record["rows"]}
    assert rows["canvas 280x280"][4] == pytest.approx(1.0), "the canvas is the reference"
    assert rows["1x1"][-1].startswith("ImageError")
    assert all(len(row) == len(record["columns"]) for row in record["rows"])


def test_the_parity_check_trains_the_same_model_as_fit_and_says_pass_or_fail(real_data_dir: Path, tmp_path: Path):
    args = ("--only", "linear", "--repeats", "1", "--epochs", "1", "--limit-batches", "3")
    done = bench("parity.py", *args, "--data-dir", real_data_dir, "--results", tmp_path)
    record = json.loads((tmp_path / "parity.json").read_text())
    assert done.returncode == (0 if record["passed"] else 1), done.stderr[-2000:]
    verdict = record["raw"]["verdicts"]["linear"]
    assert verdict["accuracy_gap"] == pytest.approx(0.0, abs=1e-4), "the plain loop is fit's training, step by step"
    assert record["passed"] is (verdict["time_ratio"] <= 1.45)
    assert record["rows"][0][-1] == ("pass" if record["passed"] else "FAIL")


def test_the_peer_benchmark_times_each_run_to_its_targets(real_data_dir: Path, tmp_path: Path) -> None:
    args = ("--only", "peer", "cnn.yaml", "--epochs", "1", "--limit-batches", "3", "--targets", "0", "0")
    done = bench("peer.py", *args, "--data-dir", real_data_dir, "--results", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "peer.json").read_text())
    for name in ("peer", "cnn.yaml"):
        (run,) = record["raw"]["runs"][name]
        assert run["epochs"] == 1
        assert 0 < run["time_to"]["0.000"] <= run["wall_s"], "launch to the end of the epoch, within the process"
    peer, cnn = record["rows"]
    assert peer[-1] is None, "the peer is the reference"
    assert cnn[-1] == pytest.approx(peer[3] / cnn[3])


def test_docs_images_saves_the_logged_picture_and_the_screenshots(shared_run: Path, tmp_path: Path) -> None:
    (run,) = (shared_run / "lightning_logs").glob("version_*")
    screenshots = []
    for name in ("page.png", "correction.png"):
        Image.new("RGB", (640, 400), "white").save(tmp_path / name)
        screenshots.append(tmp_path / name)
    out = tmp_path / "img"
    args = ["--run", run, "--page", screenshots[0], "--correction", screenshots[1], "--out", out]
    done = bench("docs_images.py", *args)
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in out.iterdir()) == ["correction.png", "draw-page.png", "tensorboard-filters.png"]
    with Image.open(out / "tensorboard-filters.png") as picture:
        assert picture.format == "PNG"
        assert picture.width >= 400
    missing = bench("docs_images.py", *args[:2], "--page", tmp_path / "none.png", "--out", out)
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("error: no screenshot at")


def test_the_hostile_load_counts_every_answer_times_health_and_gives_a_verdict(shared_run: Path, tmp_path: Path):
    args = ("--ckpt", best_checkpoint(shared_run), "--hostile", "--seconds", "5", "--clients", "4")
    done = bench("serve_load.py", *args, "--max-requests", "8", "--results", tmp_path, timeout=120)
    record = json.loads((tmp_path / "serve_hostile.json").read_text())
    assert done.returncode == (0 if record["passed"] else 1), done.stderr[-2000:]
    raw = record["raw"]
    assert record["passed"] is all(raw["checks"].values()), "a verdict, true or false"
    assert raw["totals"]["5xx other"] == 0, raw["by_request"]
    assert sum(raw["totals"].values()) >= 8, "bounded by --max-requests, each request counted"
    assert any(key.startswith("/corrections ") for key in raw["by_request"]), "corrections are sent too"
    predict, corrections, everything = record["rows"]
    assert everything[1] == predict[1] + corrections[1] == sum(raw["totals"].values())
    assert raw["health"]["probes"] > 0
    assert everything[-2] == raw["memory_mb"]["peak"]["pss"] > 0
    assert all(len(row) == len(record["columns"]) for row in record["rows"])
