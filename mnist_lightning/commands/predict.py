"""Classify your own digit images with a trained checkpoint.

    mnist-predict [--ckpt PATH|best|last] img1.png img2.jpg photos/ [--csv OUT] [--json OUT]

Without ``--ckpt`` it uses the trained CNN shipped with the package, and says so. Prints a table (file, label,
probability, and a note when not sure or when the image does not look like a digit). A file that cannot be read
as a digit gets its own error line while the others are still classified; the exit code is 0 when every file was
classified, 1 when any failed, 2 for bad arguments or an unusable checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mnist_lightning.commands.options import CHECKPOINT_HELP, Parser, checkpoint_named, named, output_file
from mnist_lightning.commands.runner import entry
from mnist_lightning.errors import ConfigError, DataError
from mnist_lightning.fileio import atomic_write
from mnist_lightning.inference import SHIPPED_MODEL, classify, shipped_summary


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


def main(argv: Sequence[str]) -> int:
    parser = Parser("mnist-predict", __doc__)
    parser.add_argument(
        "--ckpt", type=named, default=None, help=f"{CHECKPOINT_HELP} (default: the CNN the package ships)"
    )
    parser.add_argument("images", type=named, nargs="+", help="image files or folders of images")
    parser.add_argument("--csv", type=output_file, metavar="OUT", help="also write the table as CSV")
    parser.add_argument("--json", type=output_file, metavar="OUT", help="also write the table as JSON")
    args = parser.parse_args(argv)
    if args.csv and args.json and Path(args.csv).resolve() == Path(args.json).resolve():
        raise ConfigError(f"--csv and --json both name {args.csv}: one would overwrite the other; give two files")
    if args.ckpt is None:
        print(f"No --ckpt: using {shipped_summary()}", file=sys.stderr)
    rows = classify(SHIPPED_MODEL if args.ckpt is None else checkpoint_named(args.ckpt), args.images)
    if not rows:
        raise DataError("no image files found in the given folders")
    print(table(rows))
    if args.csv:
        write_csv(rows, args.csv)
    if args.json:
        write_json(rows, args.json)
    failed = sum("error" in row for row in rows)
    if failed:
        print(f"{failed} of {len(rows)} files could not be classified", file=sys.stderr)
    return 1 if failed else 0


cli = entry(main)

if __name__ == "__main__":
    cli()
