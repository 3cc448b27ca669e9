"""Make the CNN the package ships, and measure it: the model ``mnist-serve`` and ``mnist-predict`` use without
``--ckpt``.

    python bench/shipped_model.py [--config configs/cnn_augment.yaml] [--data-dir ../shared/data] [--ckpt PATH]

Trains ``--config`` with ``train.py fit`` (or takes a run's checkpoint, ``--ckpt``), keeps only what a model needs
(weights, hyperparameters: no optimizer state, no paths of the machine it was trained on), writes it to
``mnist_lightning/shipped/model.ckpt``, and measures the written file as a user gets it: MNIST's test accuracy,
the handwriting suite on the held-out hands and the not-digits suite. The figures go into ``model.json`` beside
the weights (the page and the commands name them; ``tests/system/test_shipped_model.py`` checks that the file
reproduces them) and into ``bench/results/shipped.json``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from harness import REPO, fit_command, measure, parser, write_result

from mnist_lightning.checkpoint import resolve_checkpoint
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.evaluate import handwriting, not_digits
from mnist_lightning.inference import SHIPPED_MODEL, load_model, predict_digits

KEPT = ("pytorch-lightning_version", "state_dict", "hparams_name", "hyper_parameters")
"""What a shipped checkpoint keeps: enough to build and vet the model, nothing of the run that made it."""
SEED = 0
VARIANTS = 2
"""The handwriting suite's settings the card records (the suite's default)."""
CHECK_VARIANTS = 1
"""... and those of the smaller figure ``tests/system/test_shipped_model.py`` reproduces (half the time)."""


def strip(source: Path, target: Path) -> None:
    """``source``'s weights and hyperparameters alone, to ``target``: a few MB, no optimizer state or paths."""
    content = torch.load(source, map_location="cpu", weights_only=True)
    kept = {key: content[key] for key in KEPT if key in content}
    kept["hyper_parameters"] = {**kept["hyper_parameters"], "init_from": None}
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(kept, target)


def mnist_test_accuracy(model: torch.nn.Module, data_dir: str) -> float:
    """The share of MNIST's 10,000 test digits the model's answers get right (the answers a user gets)."""
    images, labels = MNISTDataModule(data_dir=data_dir, download=False).split("test")
    return float((predict_digits(model, images).labels == labels).float().mean())


def measured(path: Path, data_dir: str) -> dict[str, Any]:
    """What the card records of the file at ``path``."""
    model = load_model(path)
    torch.set_num_threads(2)
    hands = handwriting.evaluate({"shipped": model}, "held-out", seed=SEED, variants=VARIANTS)
    held_out = hands["models"]["shipped"]["sets"]["held-out"]
    check = handwriting.evaluate({"shipped": model}, "held-out", seed=SEED, variants=CHECK_VARIANTS)
    others = not_digits.evaluate({"shipped": model})["models"]["shipped"]
    return {
        "mnist_test_accuracy": mnist_test_accuracy(model, data_dir),
        "handwriting": {
            "hands": "held-out",
            "seed": SEED,
            "variants": VARIANTS,
            "accuracy": held_out["accuracy"],
            "wrong_while_sure": held_out["wrong_while_sure"],
            "flagged": held_out["flagged"],
            "worst_rendering": held_out["worst_rendering"],
            "worst_hand": hands["models"]["shipped"]["worst_hand"],
        },
        "not_digits": {
            "flagged": others["flagged"],
            "not_a_digit": others["not_a_digit"],
            "worst_kind": others["worst_kind"],
        },
        "check": {
            "hands": "held-out",
            "seed": SEED,
            "variants": CHECK_VARIANTS,
            "accuracy": check["models"]["shipped"]["sets"]["held-out"]["accuracy"],
        },
    }


def main() -> int:
    options = parser(__doc__, repeats=1)
    options.add_argument("--config", default="configs/cnn_augment.yaml", help="the config to train")
    options.add_argument("--ckpt", type=Path, help="ship this checkpoint of --config instead of training one")
    args = options.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        source = args.ckpt
        if source is None:
            measure(fit_command(args.data_dir, root, "--config", args.config))
            source, _ = resolve_checkpoint("best", Path(root) / "lightning_logs")
        strip(source, SHIPPED_MODEL)
    figures = measured(SHIPPED_MODEL, args.data_dir)
    card = {
        "config": args.config,
        "trained_by": f"python train.py fit --config {args.config}",
        "made_by": "python bench/shipped_model.py"
        + (f" --config {args.config}" if args.ckpt is None else " --ckpt RUN.ckpt"),
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "bytes": SHIPPED_MODEL.stat().st_size,
        **figures,
    }
    SHIPPED_MODEL.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    hand = figures["handwriting"]
    write_result(
        args.results,
        "shipped",
        "The shipped model: what `mnist-serve` and `mnist-predict` use without `--ckpt`",
        [
            ["config", "", ""],
            ["MNIST test acc", ".2%", ""],
            ["held-out hands", ".2%", ""],
            ["worst hand", "", ""],
            ["worst rendering", "", ""],
            ["wrong while sure", ".2%", ""],
            ["digits flagged", ".2%", ""],
            ["not digits flagged", ".1%", ""],
            ["file", ".1f", "MB"],
        ],
        [
            [
                args.config,
                figures["mnist_test_accuracy"],
                hand["accuracy"],
                f"{hand['worst_hand']['name']} {hand['worst_hand']['accuracy']:.2%}",
                f"{hand['worst_rendering']['name']} {hand['worst_rendering']['accuracy']:.2%}",
                hand["wrong_while_sure"],
                hand["flagged"],
                figures["not_digits"]["flagged"],
                card["bytes"] / 2**20,
            ]
        ],
        notes=[
            f"Measured on the written file, as `load_model` reads it; handwriting: the held-out hands, seed {SEED}, "
            f"{VARIANTS} variants; not digits: letters in held-out hands, scribbles and noise (`mnist-evaluate "
            f"--suite not-digits`). Made in {time.perf_counter() - started:.0f} s.",
        ],
        raw=card,
    )
    print(json.dumps(card, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
