"""Export a trained checkpoint for use outside Lightning: ONNX, ``torch.export`` or a plain state_dict.

    mnist-export --ckpt PATH|best|last --format state_dict|onnx|torch_export --out FILE

Prints the temperature that calibrates the exported logits. What each format holds and takes:
:mod:`mnist_lightning.exporting`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mnist_lightning import exporting
from mnist_lightning.commands.options import CHECKPOINT_HELP, Parser, checkpoint_named, named, output_file
from mnist_lightning.commands.runner import entry
from mnist_lightning.errors import ConfigError


def main(argv: Sequence[str]) -> int:
    parser = Parser("mnist-export", exporting.__doc__)
    parser.add_argument("--ckpt", type=named, required=True, help=CHECKPOINT_HELP)
    parser.add_argument("--format", choices=list(exporting.WRITERS), default="state_dict")
    parser.add_argument("--out", type=output_file, required=True, help="the file to write")
    args = parser.parse_args(argv)
    args.ckpt = checkpoint_named(args.ckpt)
    if Path(args.out).resolve() == Path(args.ckpt).resolve():
        raise ConfigError(f"--out {args.out} is the checkpoint being exported: choose a new file")
    try:
        model = exporting.export(args.ckpt, args.format, args.out)
    except ImportError as err:  # the optional packages of --format onnx
        raise ConfigError(f"{err.name} is needed for --format {args.format}: pip install -e '.[export]'") from None
    temperature = float(model.temperature)
    print(f"wrote {args.out} ({args.format}); it takes (N, 1, 28, 28) images with pixels in [0, 1] and outputs logits")
    print(f"calibrated probabilities: softmax(logits / {temperature:.4f}), the temperature fitted on validation")
    return 0


cli = entry(main)

if __name__ == "__main__":
    cli()
