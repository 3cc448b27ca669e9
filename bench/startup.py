"""Benchmark: what each command costs beyond importing the libraries it stands on.

    python bench/startup.py [--data-dir ../shared/data] [--repeats 3]

The import floor is a process that only imports what ``train.py`` imports from other projects
(``import lightning.pytorch, torchmetrics, torchvision, jsonargparse``). Every command runs as its own process,
exactly as the README types it, interleaved with the floor in each repeat; figures are medians. Prints a Markdown
table of seconds and ratios to the floor, and writes it as a section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))
from sections import write_section  # noqa: E402

FLOOR = "import lightning.pytorch, torchmetrics, torchvision, jsonargparse"
CLASSIFY_ONE = (
    "import sys; from mnist_lightning import load_model, predict_images; "
    "print(predict_images(load_model(sys.argv[1]), [sys.argv[2]]).labels)"
)


def timed(command: list[str]) -> tuple[float, str]:
    """Wall time of ``command`` run to completion in the repository, and its standard output."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return wall, done.stdout


def commands(data_dir: str, root: str, image: str) -> dict[str, list[str]]:
    python, train = sys.executable, [sys.executable, "train.py"]
    where = ["--data.data_dir", data_dir, "--trainer.default_root_dir", root]
    best = [*where, "--ckpt_path", "best"]
    return {
        "import floor": [python, "-c", FLOOR],
        "train.py fit": [*train, "fit", *where],
        "train.py validate --ckpt_path best": [*train, "validate", *best],
        "train.py test --ckpt_path best": [*train, "test", *best],
        "train.py predict --ckpt_path best": [*train, "predict", *best],
        "python -m mnist_lightning.predict (one image)": [
            python,
            "-m",
            "mnist_lightning.predict",
            "--ckpt",
            f"{root}/lightning_logs/version_0/checkpoints/last.ckpt",
            image,
        ],
        "load_model + predict_images (one image)": [
            python,
            "-c",
            CLASSIFY_ONE,
            f"{root}/lightning_logs/version_0/checkpoints/last.ckpt",
            image,
        ],
    }


def write_test_digit(data_dir: str, path: Path) -> None:
    """The first official test digit as a PNG, black ink on white paper like a user's scan."""
    from PIL import Image

    from mnist_lightning import MNISTDataModule

    pixels, _ = MNISTDataModule(data_dir=data_dir, download=False).split("test")
    Image.fromarray(255 - (pixels[0, 0] * 255).round().byte().numpy()).save(path)


def test_accuracy(data_dir: str, root: str) -> float:
    """The official test accuracy of the run's best checkpoint, as ``train.py test`` prints it."""
    where = ["--data.data_dir", data_dir, "--trainer.default_root_dir", root, "--ckpt_path", "best"]
    _, out = timed([sys.executable, "train.py", "test", *where, "--trainer.enable_progress_bar", "false"])
    line = next(line for line in out.splitlines() if line.split() and line.split()[0] == "test/acc")
    return float(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = REPO.parent / "shared" / "data"
    parser.add_argument("--data-dir", default=str(default_data if default_data.is_dir() else REPO / "data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    args = parser.parse_args()
    data_dir = str(Path(args.data_dir).resolve())

    walls: dict[str, list[float]] = {}
    accuracies = []
    with tempfile.TemporaryDirectory() as scratch:
        image = Path(scratch) / "digit.png"
        write_test_digit(data_dir, image)
        for repeat in range(args.repeats):
            root = str(Path(scratch) / f"run{repeat}")
            for name, command in commands(data_dir, root, str(image)).items():
                print(f"repeat {repeat + 1}: {name}", file=sys.stderr, flush=True)
                walls.setdefault(name, []).append(timed(command)[0])
            accuracies.append(test_accuracy(data_dir, root))

    floor = statistics.median(walls["import floor"])
    rows = [
        f"| `{name}` | {statistics.median(values):.2f} s | {statistics.median(values) / floor:.2f}x | "
        f"{', '.join(f'{v:.2f}' for v in values)} |"
        for name, values in walls.items()
    ]
    text = "\n".join(
        [
            "## Start-up: every command against the import floor",
            "",
            f"`python bench/startup.py --repeats {args.repeats}` on {platform.node() or 'this machine'}, "
            f"{time.strftime('%Y-%m-%d')}: each command as its own process, as the README types it (progress bar "
            f'on), interleaved with the import floor (`python -c "{FLOOR}"`) in every repeat; medians.',
            "",
            "| command | whole process | / import floor | each repeat (s) |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            f"Test accuracy of each `fit`'s best checkpoint: {', '.join(f'{a:.2%}' for a in accuracies)}.",
            "",
            "```json",
            json.dumps({"wall_s": walls, "test_acc": accuracies}, indent=1),
            "```",
        ]
    )
    print(text)
    write_section(Path(args.out), text)


if __name__ == "__main__":
    main()
