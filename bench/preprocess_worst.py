"""What the worst image shapes cost ``preprocess``, against a drawing on the draw page's 280x280 canvas.

    python bench/preprocess_worst.py [--repeats 3]

Each shape is a PNG file as a user (or an attacker) would send it: a long dark stroke on white paper, so that
the strokes measure as thin as they can; a thin-pen digit on a 4000x4000 page; and tiny images. Prints each
shape's median time (decoding included) and its ratio to the canvas drawing's, and how many pixels per
millisecond that is: preprocessing should cost a bounded time, roughly linear in the pixels decoded. Torch
runs on one thread (``--threads``), as in the server's inference workers. Writes
``bench/results/preprocess_worst.json``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import torch
from harness import RESULTS, write_result
from PIL import Image, ImageDraw

from mnist_lightning.images import ImageError
from mnist_lightning.preprocessing import preprocess


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def canvas_drawing() -> bytes:
    """A "7" drawn on the page's 280x280 canvas with its 18 px brush: white on black."""
    image = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=255, width=18)
    return png(image)


def stroke(width: int, height: int, pen: int = 1) -> bytes:
    """A dark diagonal stroke ``pen`` px wide across white paper of that size: the thinnest a digit can look."""
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).line([(width // 10, height // 10), (width - width // 10, height - height // 10)], 0, pen)
    return png(image)


def strip(width: int) -> bytes:
    """A 1-pixel-high strip, dark in its middle fifth."""
    image = Image.new("L", (width, 1), 255)
    ImageDraw.Draw(image).line([(2 * width // 5, 0), (3 * width // 5, 0)], fill=0)
    return png(image)


def thin_seven(side: int, pen: int = 3) -> bytes:
    """A 3 px pen's "7" on a large white page: strokes widened by the largest factor."""
    image = Image.new("L", (side, side), 255)
    ImageDraw.Draw(image).line([(side // 4, side // 6), (3 * side // 4, side // 6), (side // 2, 5 * side // 6)], 0, pen)
    return png(image)


def tiny(side: int) -> bytes:
    image = Image.new("L", (side, side), 255)
    image.putpixel((side // 2, side // 2), 0)
    return png(image)


SHAPES = {
    "canvas 280x280": canvas_drawing,
    "1x10000 strip": lambda: strip(10_000),
    "16000x1000 stroke": lambda: stroke(16_000, 1_000),
    "8000x1000 stroke": lambda: stroke(8_000, 1_000),
    "4000x4000 thin pen": lambda: thin_seven(4_000),
    "1x1": lambda: tiny(1),
    "3x3": lambda: tiny(3),
}


def seconds(data: bytes, repeats: int) -> tuple[float, str]:
    """The median time of ``preprocess`` on the decoded-from-bytes image, and what it gave."""
    times, outcome = [], "digit"
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            preprocess(Image.open(io.BytesIO(data)))
        except ImageError as err:
            outcome = f"ImageError: {err}"
        times.append(time.perf_counter() - start)
    return statistics.median(times), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the server's workers use 1)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON (default: bench/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, make in SHAPES.items():
        data = make()
        with Image.open(io.BytesIO(data)) as image:
            pixels = image.width * image.height
        rows.append((name, pixels, len(data), *seconds(data, args.repeats)))
    reference = rows[0][3]
    write_result(
        args.results,
        "preprocess_worst",
        "Preprocessing: the worst image shapes against a canvas drawing",
        [
            ["shape", "", ""],
            ["pixels", ",d", ""],
            ["PNG bytes", ",d", ""],
            ["time", ".1f", " ms"],
            ["/ canvas", ".1f", "x"],
            ["pixels per ms", ",.0f", ""],
            ["outcome", "", ""],
        ],
        [
            [name, pixels, size, took * 1000, took / reference, pixels / (took * 1000), outcome]
            for name, pixels, size, took, outcome in rows
        ],
        notes=[
            f"Each shape a PNG file as a user (or an attacker) would send it, decoded and preprocessed; medians of "
            f"{args.repeats} runs on {args.threads} torch thread(s), as in the server's inference workers."
        ],
    )
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
