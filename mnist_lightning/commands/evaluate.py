"""Score your own checkpoints on inputs that are not MNIST's test set, and get a table plus JSON.

    mnist-evaluate --ckpt PATH [--ckpt NAME=PATH ...] [--suite handwriting|not-digits|robustness|fidelity]
                   [--hands tuning|held-out|all|sealed] [--data.data_dir DIR] [--json OUT] [--markdown]

``handwriting`` (the default) reads the digits of 23 hands (handwriting fonts and pen-stroke hands) drawn
seventeen ways; ``--hands held-out`` gives the honest figure (settings are chosen on the tuning hands only), and
``--hands sealed`` the last one, asked for once at the end. ``not-digits`` counts how often letters, scribbles and
noise are flagged as no digit. ``robustness`` transforms MNIST's test digits the ways real inputs differ;
``fidelity`` checks what the preprocessing does to MNIST's own digits, PNG files, typed digits and photos. Every
image goes through the predict path, as a user's would. The tables give each model's figure per hand and per
rendering or transform, and the worst of each, not only the mean.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from mnist_lightning.commands.options import Parser, named, output_file, whole
from mnist_lightning.commands.runner import entry
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.errors import ConfigError
from mnist_lightning.evaluate import fidelity, handwriting, not_digits, robustness
from mnist_lightning.evaluate.fonts import HELD_OUT, font_paths
from mnist_lightning.evaluate.hands import HAND_SETS, hand_styles
from mnist_lightning.evaluate.not_digit_images import SOURCES, render_not_digits
from mnist_lightning.evaluate.renderings import RENDERINGS, VARIANTS, contact_sheet, render_benchmark
from mnist_lightning.evaluate.report import write_json
from mnist_lightning.fileio import WriteError
from mnist_lightning.inference import load_model

SUITE_OPTIONS = {
    "handwriting": {"hands", "variants", "seed", "save_samples"},
    "not-digits": {"variants", "seed", "save_samples"},
    "robustness": {"data_dir", "download", "limit"},
    "fidelity": {"data_dir", "download", "limit", "png", "photos"},
}
"""The options each suite takes besides the shared ones; another suite's option is refused, not ignored."""


def folder_to_write(value: str) -> str:
    """A folder the contact sheet goes into, checked at the start: a file there is refused before any drawing."""
    if Path(value).exists() and not Path(value).is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a file, not a folder: give the folder the sheet goes into")
    return named(value)


def parser() -> Parser:
    parse = Parser("mnist-evaluate", __doc__)
    parse.add_argument("--ckpt", action="append", required=True, help="PATH or NAME=PATH of a checkpoint; repeat")
    parse.add_argument("--suite", choices=list(SUITE_OPTIONS), default="handwriting", help="default: handwriting")
    parse.add_argument("--json", type=output_file, metavar="OUT", help="also write the result as JSON to OUT")
    parse.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parse.add_argument("--threads", type=whole(1), help="torch CPU threads (default: torch's)")
    hand = parse.add_argument_group("handwriting and not-digits")
    hand.add_argument(
        "--hands", choices=list(HAND_SETS), help="handwriting: which hands (default: all; held-out is honest)"
    )
    hand.add_argument("--fonts", dest="hands", choices=list(HAND_SETS), help=argparse.SUPPRESS)  # the old name
    hand.add_argument(
        "--variants",
        type=whole(1),
        help=f"seeded variants of every drawing (default {VARIANTS})",
    )
    hand.add_argument("--seed", type=int, help="seed of the drawings (default 0)")
    hand.add_argument(
        "--save-samples", type=folder_to_write, metavar="DIR", help="write DIR/<suite>-samples.png, a contact sheet"
    )
    mnist = parse.add_argument_group("robustness and fidelity (MNIST's test digits)")
    mnist.add_argument("--data.data_dir", dest="data_dir", help="where MNIST is (default: data)")
    mnist.add_argument(
        "--data.download", dest="download", choices=["true", "false"], help="fetch missing files (default: true)"
    )
    mnist.add_argument("--limit", type=whole(1), help="how many test digits, the first ones (default: all 10,000)")
    mnist.add_argument("--png", type=whole(0), help="fidelity: test digits saved as PNG files (default 1000)")
    mnist.add_argument("--photos", type=whole(0), help="fidelity: synthetic photos, half with a thin pen (default 300)")
    return parse


def checked(args: argparse.Namespace) -> argparse.Namespace:
    """The arguments, refused at once when a value is out of range or belongs to another suite."""
    given = {name for name in set().union(*SUITE_OPTIONS.values()) if getattr(args, name) is not None}
    foreign = sorted(given - SUITE_OPTIONS[args.suite])
    if foreign:
        option = option_name(foreign[0])
        raise ConfigError(f"{option} does not apply to --suite {args.suite}; it takes: {options_of(args.suite)}")
    return args


def option_name(dest: str) -> str:
    return "--data." + dest if dest in ("data_dir", "download") else "--" + dest.replace("_", "-")


def options_of(suite: str) -> str:
    return ", ".join(option_name(dest) for dest in sorted(SUITE_OPTIONS[suite]))


def checkpoints(specs: Sequence[str]) -> dict[str, str]:
    """``NAME=PATH`` or ``PATH`` (named by its file's stem) of each ``--ckpt``; a name given twice is refused."""
    named: dict[str, str] = {}
    for spec in specs:
        name, _, path = spec.partition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        name = name or Path(path).stem
        if not name or not path:
            raise ConfigError(f"--ckpt {spec!r}: expected PATH or NAME=PATH")
        if name in named:
            raise ConfigError(f"--ckpt: two checkpoints named {name!r}; name them apart with NAME=PATH")
        named[name] = path
    return named


def read_test_digits(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``--limit`` of MNIST's official test digits, pixels in [0, 1]."""
    images, labels = MNISTDataModule(args.data_dir or "data", download=args.download != "false").split("test")
    count = len(labels) if args.limit is None else min(args.limit, len(labels))
    return images[:count], labels[:count]


def save_sheet(sheet: Image.Image, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(path)
    except OSError as err:
        raise WriteError(f"Cannot write {path}: {err.strerror or err}. Choose another --save-samples folder.") from None
    print(f"wrote {path}", file=sys.stderr)


def run_suite(args: argparse.Namespace, models: dict[str, torch.nn.Module]) -> tuple[dict, str]:
    """The chosen suite's JSON result and its tables."""
    seed = args.seed or 0
    if args.suite == "handwriting":
        selection, variants = args.hands or "all", args.variants or VARIANTS
        samples = render_benchmark(hand_styles(HAND_SETS[selection]), seed, variants)
        print(f"handwriting: {len(samples):,} images of {len(HAND_SETS[selection])} hands", file=sys.stderr)
        if args.save_samples:
            save_sheet(contact_sheet(samples, tuple(RENDERINGS)), Path(args.save_samples) / "handwriting-samples.png")
        result = handwriting.evaluate(models, selection, seed, variants, samples)
        return result, handwriting.tables(result, args.markdown)
    if args.suite == "not-digits":
        variants = args.variants or VARIANTS
        images = render_not_digits(font_paths(HELD_OUT), seed, variants)
        print(f"not-digits: {len(images):,} images", file=sys.stderr)
        if args.save_samples:
            save_sheet(contact_sheet(images, SOURCES), Path(args.save_samples) / "not-digits-samples.png")
        result = not_digits.evaluate(models, seed, variants, images)
        return result, not_digits.tables(result, args.markdown)
    digits, labels = read_test_digits(args)
    if args.suite == "robustness":
        result = robustness.evaluate(models, digits, labels)
        return result, robustness.tables(result, args.markdown)
    result = fidelity.evaluate(models, digits, labels, 1000 if args.png is None else args.png, args.photos or 300)
    return result, fidelity.tables(result, args.markdown)


def main(argv: Sequence[str]) -> int:
    """Load every checkpoint (a wrong one is refused before anything is drawn), run the suite, print its tables
    and write its JSON."""
    args = checked(parser().parse_args(argv))
    if args.suite == "handwriting":
        hand_styles(HAND_SETS[args.hands or "all"])  # missing fonts: refused before any checkpoint is read
    elif args.suite == "not-digits":
        font_paths(HELD_OUT)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = checkpoints(args.ckpt)
    models = {name: load_model(path) for name, path in paths.items()}
    result, text = run_suite(args, models)
    result = {"suite": result["suite"], "checkpoints": paths, **result}
    print(text)
    if args.json:
        write_json(args.json, result)
    return 0


cli = entry(main)


if __name__ == "__main__":
    cli()
