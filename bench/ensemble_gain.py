"""Benchmark: an ensemble checkpoint against its own members on the official test set.

    python bench/ensemble_gain.py --ckpt ensemble.ckpt [--data-dir ../shared/data] [--repeats 5]

MNIST's test set only. Each member (taken from the ensemble checkpoint itself, with its own temperature) and
the ensemble classify the 10,000 test digits: accuracy, expected calibration error of the calibrated
probabilities (15 bins, as ``test/ece``), the digits the ensemble gets right that its best member misses (and
the reverse), and the time to classify 1,000 preprocessed digits (median of ``--repeats``, batches of 256 as
``predict_images``). Writes ``bench/results/ensemble_gain.json``.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import torch
from harness import parser, write_result
from torchmetrics.functional.classification import multiclass_calibration_error

from mnist_lightning import MNISTDataModule, load_model
from mnist_lightning.errors import CheckpointError, ConfigError, DataError
from mnist_lightning.inference import predict_digits
from mnist_lightning.models import LitClassifier


def seconds_per_thousand(model: LitClassifier, digits: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict_digits(model, digits[:1000])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(ensemble: LitClassifier, images: torch.Tensor, labels: torch.Tensor, repeats: int) -> list[dict]:
    """One row per member, then the ensemble's: accuracy, ECE, seconds per 1,000 digits, correct mask."""
    rows = []
    for name, model in [*((f"member {i}", m) for i, m in enumerate(ensemble.members)), ("ensemble", ensemble)]:
        probabilities = predict_digits(model, images).probabilities
        rows.append(
            {
                "name": name,
                "correct": probabilities.argmax(dim=1) == labels,
                "ece": float(multiclass_calibration_error(probabilities, labels, num_classes=10, n_bins=15)),
                "seconds": seconds_per_thousand(model, images, repeats),
            }
        )
    return rows


def write(rows: list[dict], args: Any) -> None:
    best = max(rows[:-1], key=lambda row: int(row["correct"].sum()))
    ensemble = rows[-1]
    gained = int((ensemble["correct"] & ~best["correct"]).sum())
    lost = int((~ensemble["correct"] & best["correct"]).sum())
    write_result(
        args.results,
        "ensemble_gain",
        "An ensemble against its own members",
        [
            ["model", "", ""],
            ["test accuracy", ".2%", ""],
            ["test ECE (calibrated)", ".2%", ""],
            ["seconds per 1,000 digits", ".3f", " s"],
        ],
        [[row["name"], row["correct"].float().mean().item(), row["ece"], row["seconds"]] for row in rows],
        notes=[
            f"Against its best member ({best['name']}): {gained} test digits right that it misses, {lost} missed "
            f"that it gets right; each answer costs {ensemble['seconds'] / best['seconds']:.1f}x its time."
        ],
        raw={"gained": gained, "lost": lost, "best_member": best["name"]},
    )


def main() -> int:
    options = parser(__doc__, repeats=5)
    options.add_argument("--ckpt", required=True, help="an ensemble checkpoint (mnist-ensemble)")
    args = options.parse_args()
    try:
        ensemble = load_model(args.ckpt)
        images, labels = MNISTDataModule(data_dir=args.data_dir, download=False).split("test")
    except (CheckpointError, ConfigError, DataError) as err:
        options.error(str(err))
    if not hasattr(ensemble, "members"):
        options.error(f"{args.ckpt} holds a {type(ensemble).__name__}, not an ensemble")
    rows = measure(ensemble, images, labels, args.repeats)
    write(rows, args)
    for row in rows:
        print(row["name"], f"{row['correct'].float().mean():.2%}", f"ECE {row['ece']:.2%}", f"{row['seconds']:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
