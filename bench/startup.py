"""Start-up: what each command costs beyond importing the libraries it stands on.

    python bench/startup.py [--data-dir ../shared/data] [--repeats 3]

The import floor is a process that only imports what ``train.py`` imports from other projects
(``import lightning.pytorch, torchmetrics, torchvision, jsonargparse``). Every command runs as its own process,
exactly as the README types it, interleaved with the floor in each repeat; figures are medians, peak RSS the
largest. Writes ``bench/results/startup.json``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from harness import measure, median, parser, write_result

FLOOR = "import lightning.pytorch, torchmetrics, torchvision, jsonargparse"
CLASSIFY_ONE = (
    "import sys; from mnist_lightning import load_model, predict_images; "
    "print(predict_images(load_model(sys.argv[1]), [sys.argv[2]]).labels)"
)


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
        "mnist-predict (one image, as python -m mnist_lightning.commands.predict)": [
            python,
            "-m",
            "mnist_lightning.commands.predict",
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


def main() -> None:
    args = parser(__doc__).parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    walls: dict[str, list[float]] = {}
    rss: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        image = Path(scratch) / "digit.png"
        write_test_digit(data_dir, image)
        for repeat in range(args.repeats):
            root = str(Path(scratch) / f"run{repeat}")
            for name, command in commands(data_dir, root, str(image)).items():
                print(f"repeat {repeat + 1}: {name}", file=sys.stderr, flush=True)
                run = measure(command)
                walls.setdefault(name, []).append(run.wall_s)
                rss.setdefault(name, []).append(run.max_rss_mb)
    floor = median(walls["import floor"])
    rows = [[f"`{name}`", median(values), median(values) / floor, max(rss[name])] for name, values in walls.items()]
    write_result(
        args.results,
        "startup",
        "Start-up: every command against the import floor",
        [
            ["command", "", ""],
            ["whole process", ".2f", " s"],
            ["/ import floor", ".2f", "x"],
            ["peak RSS", ".0f", " MB"],
        ],
        rows,
        notes=[
            "Each command its own process, as the README types it (progress bar on), interleaved with the import "
            f'floor (`python -c "{FLOOR}"`) in every repeat; medians of the repeats.'
        ],
        raw={"wall_s": walls, "rss_mb": rss},
    )


if __name__ == "__main__":
    main()
