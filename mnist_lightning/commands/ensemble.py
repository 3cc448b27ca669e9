"""Assemble trained checkpoints into one ensemble checkpoint (:class:`~mnist_lightning.models.LitEnsemble`).

    mnist-ensemble --ckpt A.ckpt B.ckpt C.ckpt --out ensemble.ckpt [--data.data_dir DIR]
    mnist-ensemble --ckpt runs/seed1 runs/seed2 runs/seed3 --out ensemble.ckpt

A folder stands for the best checkpoint (by the run's own monitor) of the latest run under it: the
``--trainer.default_root_dir`` of a fit, or its ``lightning_logs``.

The members must share their validation split (same ``--data.dataset``, ``--data.val_size`` and
``--data.seed``; vary ``--seed_everything``): the ensemble's temperature is fitted on it, so it must be held
out from every member. The command prints each member's and the ensemble's validation accuracy. The file it
writes loads like any checkpoint of this project: ``load_model``, ``mnist-predict``, ``mnist-serve``,
``mnist-export``, ``train.py validate|test --ckpt_path``. The data is only read (never downloaded) to fit the
temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mnist_lightning.commands.options import Parser, named, output_file
from mnist_lightning.commands.runner import entry
from mnist_lightning.ensembling import assemble, member_file, save
from mnist_lightning.errors import ConfigError


def main(argv: Sequence[str]) -> int:
    parser = Parser("mnist-ensemble", __doc__)
    parser.add_argument("--ckpt", type=named, nargs="+", required=True, help="2-16 checkpoints written by train.py fit")
    parser.add_argument("--out", type=output_file, required=True, help="the ensemble checkpoint to write")
    parser.add_argument(
        "--data.data_dir", dest="data_dir", help="the folder holding MNIST/raw/ (default: the members' own)"
    )
    args = parser.parse_args(argv)
    if len(args.ckpt) < 2:
        parser.error("--ckpt needs at least 2 checkpoints")
    paths = [str(member_file(given)) for given in args.ckpt]
    if Path(args.out).resolve() in {Path(path).resolve() for path in paths}:
        raise ConfigError(f"--out {args.out} is one of the members: choose a new file")
    ensemble, data, accuracy = assemble(paths, args.data_dir)
    save(ensemble, data, args.out)
    width = max(len(path) for path in paths)
    print(f"{'member':<{width}}  validation accuracy")
    for path in paths:
        print(f"{path:<{width}}  {accuracy[path]:.2%}")
    print(f"{'ensemble':<{width}}  {accuracy[None]:.2%}  (temperature {float(ensemble.temperature):.3f})")
    print(f"wrote {args.out}: {len(args.ckpt)} members, validated on {data['dataset']} (val_size {data['val_size']})")
    return 0


cli = entry(main)

if __name__ == "__main__":
    cli()
