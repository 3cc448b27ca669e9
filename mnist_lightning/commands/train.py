"""``python train.py fit|validate|test|predict`` (also ``mnist-train``): LightningCLI, see :mod:`mnist_lightning.cli`.

Ends by the rule of :mod:`.runner`, and at once: the interpreter's teardown is skipped (see
:func:`mnist_lightning.cli.exit.exit_now`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lightning.pytorch.utilities.exceptions import SIGTERMException

from mnist_lightning.cli.app import MNISTCLI
from mnist_lightning.cli.exit import exit_now
from mnist_lightning.commands.runner import entry
from mnist_lightning.errors import TrainingInterruptedError
from mnist_lightning.runlock import release_runs


def main(argv: Sequence[str]) -> int:
    # The process's own arguments go as None: LightningCLI warns when it is given arguments besides sys.argv.
    args = None if list(argv) == sys.argv[1:] else list(argv)
    try:
        MNISTCLI(args=args)
    except SIGTERMException:  # Lightning's own stop on SIGTERM (outside the training batches LastCheckpoint sees)
        raise TrainingInterruptedError("stopped by SIGTERM", exit_code=128 + 15) from None
    finally:
        release_runs()
    return 0


cli = entry(main, end=exit_now)

if __name__ == "__main__":
    cli()
