"""``mnist-evaluate`` as a user runs it, in a process of its own: on the real MNIST test digits it prints its table
and writes its JSON, and a bad argument is one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import untrained_checkpoint

from mnist_lightning.evaluate.robustness import TRANSFORMS


def test_python_dash_m_scores_the_real_test_digits(real_data_dir: Path, tmp_path: Path) -> None:
    checkpoint = untrained_checkpoint(tmp_path / "tiny.ckpt")
    command = [sys.executable, "-m", "mnist_lightning.commands.evaluate", "--ckpt", str(checkpoint)]
    command += ["--suite", "robustness", "--limit", "50", "--data.data_dir", str(real_data_dir), "--json", "out.json"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert all(f"\n{name} " in done.stdout for name in TRANSFORMS)
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["suite"] == "robustness"
    assert result["images"] == 50
    assert result["checkpoints"] == {"tiny": str(checkpoint)}


def test_the_console_script_refuses_a_bad_argument_in_one_line(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("mnist-evaluate")
    assert script.is_file(), "pip install -e . installs the console script"
    done = subprocess.run([str(script), "--ckpt", "x.ckpt", "--variants", "0"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == "error: argument --variants: 0 is not a whole number from 1 (see `mnist-evaluate --help`)\n"
    assert done.stdout == ""
