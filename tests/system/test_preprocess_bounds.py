"""Preprocessing's cost stays bounded whatever the image's shape: the worst shapes finish (in a child process,
so that a hang fails by its timeout instead of stalling the suite)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO

WORST_SHAPES = """
import io, sys
from PIL import Image, ImageDraw
from mnist_lightning.images import ImageError
from mnist_lightning.preprocessing import preprocess
for width, height in [(10_000, 1), (1_000, 16_000), (1_000, 8_000), (4_000, 4_000), (1, 1), (3, 3)]:
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).line([(width // 10, height // 10), (width - width // 10, height - height // 10)], 0, 1)
    try:
        print(width, height, tuple(preprocess(image).shape))
    except ImageError as err:
        print(width, height, "ImageError", str(err).count("\\n"))
"""


def test_the_worst_shapes_finish(tmp_path: Path) -> None:
    """Long, thin, huge and tiny images each finish (a hang guard, not a timing: a 1x10000 strip took 96 s)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", WORST_SHAPES], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 6
    assert all(line.endswith(("(1, 28, 28)", "ImageError 0")) for line in lines), lines
