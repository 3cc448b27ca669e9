"""The pictures of README.md and docs/: one TensorBoard picture of a run and the browser tests' screenshots.

The pictures are taken, never drawn for the docs: the TensorBoard one is read back from a run's event file (what
``TensorBoardPictures`` logged), the page is the screenshot ``tests/system/test_serve_browser.py`` saves while it
draws a 7, the correction buttons the one it saves after it corrects a misread 1.

    python train.py fit --data.data_dir ../shared/data
    python -m pytest tests/system/test_serve_browser.py -k drawing_a_seven    # writes tests/artifacts/page-1280x800.png
    python -m pytest tests/system/test_serve_browser.py -k saves_the_drawing  # writes tests/artifacts/correction.png
    python bench/docs_images.py --run lightning_logs/version_0
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "tests" / "artifacts" / "page-1280x800.png"
CORRECTION = REPO / "tests" / "artifacts" / "correction.png"


def save_tensorboard_picture(run: Path, tag: str, out: Path) -> Path:
    """Write the last picture logged under ``tag`` in ``run``'s event file to ``out`` (PNG, as logged)."""
    files = sorted(run.glob("events.out.tfevents.*"))
    if not files:
        raise SystemExit(f"error: no TensorBoard event file in {run}: pass a run folder (lightning_logs/version_N)")
    accumulator = EventAccumulator(str(files[-1]), size_guidance={IMAGES: 0})
    accumulator.Reload()
    if tag not in accumulator.Tags()[IMAGES]:
        raise SystemExit(f"error: {run} has no picture {tag!r}; it has {accumulator.Tags()[IMAGES]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(accumulator.Images(tag)[-1].encoded_image_string)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run folder, lightning_logs/version_N")
    parser.add_argument("--tag", default="val/filters", help="the TensorBoard picture to save (default: val/filters)")
    parser.add_argument("--page", type=Path, default=PAGE, help="the browser tests' screenshot of the draw page")
    parser.add_argument("--correction", type=Path, default=CORRECTION, help="the browser tests' correction screenshot")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    print(save_tensorboard_picture(args.run, args.tag, args.out / "tensorboard-filters.png"))
    screenshots = (
        (args.page, "draw-page.png", "tests/system/test_serve_browser.py -k drawing_a_seven"),
        (args.correction, "correction.png", "tests/system/test_serve_browser.py -k saves_the_drawing"),
    )
    for screenshot, name, test in screenshots:
        if not screenshot.is_file():
            raise SystemExit(f"error: no screenshot at {screenshot}: run pytest {test}")
        print(shutil.copyfile(screenshot, args.out / name))


if __name__ == "__main__":
    main()
