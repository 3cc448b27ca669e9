"""The GPU lane and the GPU check on a machine without a GPU: the lane is chosen by name only and then fails, never
skips; ``bench/gpu.sh`` says there is no GPU and makes a short CPU smoke run that writes no GPU figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO

NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
GPU_TESTS = "tests/integration/test_gpu.py"


def pytest_on(*args: str) -> subprocess.CompletedProcess[str]:
    """pytest on the GPU tests' file, on a machine where torch sees no CUDA device."""
    command = [sys.executable, "-m", "pytest", GPU_TESTS, "-p", "no:cacheprovider", "-q", "-n", "0", *args]
    return subprocess.run(command, cwd=REPO, env=NO_GPU, capture_output=True, text=True)


def test_the_gpu_lane_is_chosen_by_name_and_fails_without_a_gpu() -> None:
    chosen = pytest_on("-m", "gpu")
    failed = {line.split()[1] for line in chosen.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))}
    assert chosen.returncode == 1
    assert len(failed) == 3, chosen.stdout[-2000:]
    assert "need a CUDA device" in chosen.stdout
    assert "skipped" not in chosen.stdout, "they fail, never skip"
    default = pytest_on("--collect-only")
    assert "3 deselected" in default.stdout.strip().splitlines()[-1], "the default lane counts them as deselected"
    assert not any(test in default.stdout for test in failed)


def test_the_gpu_check_falls_back_to_a_short_cpu_run_without_a_gpu(real_data_dir: Path, tmp_path: Path) -> None:
    env = {**NO_GPU, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    command = ["bash", "bench/gpu.sh", "--data-dir", str(real_data_dir), "--results", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("NO GPU: torch sees no CUDA device here. The GPU-marked tests need one")
    assert [path.name for path in tmp_path.iterdir()] == ["gpu_smoke.json"], "no GPU figures"
    smoke = json.loads((tmp_path / "gpu_smoke.json").read_text())
    assert smoke["title"].startswith("GPU check: CPU smoke run (no GPU on this machine")
    assert "GPU-marked tests (`pytest -m gpu`): not run (no GPU)." in smoke["notes"]
    rows = {row[0]: row for row in smoke["rows"]}
    assert set(rows) == {"default run", "cnn.yaml", "cnn_fast.yaml"}
    for config, row in rows.items():
        _, compiled, epochs, train_s, wall_s, accuracy, note = row
        assert (compiled, epochs, note) == ("no", 1, ""), config
        assert 0 < train_s < wall_s
        assert 0 <= accuracy <= 1


def test_compiling_the_network_keeps_the_checkpoint_keys() -> None:
    """The GPU check's compiled fits save checkpoints an uncompiled model loads (run as bench/ runs it)."""
    check = (
        "from gpu import CompileNet; from mnist_lightning import LitCNN; "
        "model = LitCNN(channels=[4, 8], hidden_dim=16); keys = list(model.state_dict()); "
        "CompileNet().setup(None, model, 'fit'); assert list(model.state_dict()) == keys, 'keys changed'"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "bench"), str(REPO)])}
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
