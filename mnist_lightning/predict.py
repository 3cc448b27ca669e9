"""Classify your own digit images with a trained checkpoint.

    python -m mnist_lightning.predict --ckpt PATH img1.png img2.jpg photos/ [--csv OUT] [--json OUT]

Prints a table (file, label, probability). A file that cannot be read as a digit gets its own error line
while the others are still classified; the exit code is 0 when every file was classified, 1 when any
failed, 2 for bad arguments or an unusable checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from mnist_lightning.errors import CheckpointError
from mnist_lightning.fileio import WriteError, atomic_write
from mnist_lightning.inference import load_model, predict_digits
from mnist_lightning.preprocess import ImageError, preprocess

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


def expand(paths: Sequence[str]) -> Iterator[Path]:
    """Files as given; folders as the image files inside them (recursively, sorted).

    A broken symbolic link with an image's name is yielded too, so that it is reported rather than skipped.
    """
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and _file_or_link(p))
        else:
            yield path


def _file_or_link(path: Path) -> bool:
    return path.is_file() or (path.is_symlink() and not path.exists())


def classify(ckpt: str, paths: Sequence[str]) -> list[dict]:
    """One row per file: ``file``, ``label`` and ``probability``, or ``error``."""
    model = load_model(ckpt)
    rows, digits = [], []
    for path in expand(paths):
        try:
            digits.append((len(rows), preprocess(path)))
            rows.append({"file": str(path)})
        except ImageError as err:
            rows.append({"file": str(path), "error": str(err).removeprefix(f"{path}: ")})
    if digits:
        predictions = predict_digits(model, torch.stack([digit for _, digit in digits]))
        p = predictions
        verdicts = zip(p.labels, p.probabilities, p.unsure, p.runner_up, strict=True)
        for (row, _), (label, probs, unsure, runner_up) in zip(digits, verdicts, strict=True):
            rows[row].update(label=int(label), probability=round(float(probs[label]), 4))
            if unsure:
                rows[row]["note"] = f"not sure: {int(label)} or {int(runner_up)}"
    return rows


def table(rows: list[dict]) -> str:
    width = max([len("file"), *(len(r["file"]) for r in rows)])
    lines = [f"{'file':<{width}}  label  probability"]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['file']:<{width}}  error: {row['error']}")
        else:
            note = f"  {row['note']}" if "note" in row else ""
            lines.append(f"{row['file']:<{width}}  {row['label']:>5}  {row['probability']:>11.2%}{note}")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["file", "label", "probability", "note", "error"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda stream: stream.write(buffer.getvalue().encode()))


def write_json(rows: list[dict], path: str) -> None:
    atomic_write(path, lambda stream: stream.write(json.dumps(rows, indent=1).encode()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lightning.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by train.py fit")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--csv", metavar="OUT", help="also write the table as CSV")
    parser.add_argument("--json", metavar="OUT", help="also write the table as JSON")
    args = parser.parse_args(argv)
    try:
        rows = classify(args.ckpt, args.images)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not rows:
        print("error: no image files found in the given folders", file=sys.stderr)
        return 1
    print(table(rows))
    try:
        if args.csv:
            write_csv(rows, args.csv)
        if args.json:
            write_json(rows, args.json)
    except WriteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    failed = sum("error" in row for row in rows)
    if failed:
        print(f"{failed} of {len(rows)} files could not be classified", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
