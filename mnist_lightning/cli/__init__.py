"""``train.py``'s command line: :func:`main` runs :class:`MNISTCLI` and ends the process by the exit-code rule
of :mod:`.exit`. The names other modules import (``tune``) stay importable from here."""

from __future__ import annotations

import sys

from lightning.pytorch.cli import ArgsType
from lightning.pytorch.utilities.exceptions import SIGTERMException

from mnist_lightning.cli.app import MNISTCLI, spec
from mnist_lightning.cli.exit import (
    EXIT_FAILED,
    EXIT_REFUSED,
    LIBRARY_NOISE,
    exit_code,
    exit_now,
    own_error,
    silence_library_noise,
)
from mnist_lightning.cli.parser import CLASS_OPTIONS, MNISTArgumentParser, named_subcommand, with_hint
from mnist_lightning.cli.run_folders import FOLLOW_ROOT, launched_as_rank_zero
from mnist_lightning.cli.threads import cpu_threads
from mnist_lightning.runlock import release_runs

__all__ = [
    "CLASS_OPTIONS",
    "EXIT_FAILED",
    "EXIT_REFUSED",
    "FOLLOW_ROOT",
    "LIBRARY_NOISE",
    "MNISTCLI",
    "MNISTArgumentParser",
    "cpu_threads",
    "launched_as_rank_zero",
    "main",
    "named_subcommand",
    "own_error",
    "spec",
    "with_hint",
]


def main(args: ArgsType = None) -> None:
    """Run the CLI; the project's own errors print one clear message instead of a traceback.

    Called without ``args`` (from ``train.py``) it ends the process itself, skipping the interpreter's
    teardown (see :func:`.exit.exit_now`).
    """
    silence_library_noise()
    code = 0
    try:
        MNISTCLI(args=args)
    except Exception as err:
        own = own_error(err)
        if own is None:
            raise
        sys.stderr.write(f"error: {own}\n")
        code = exit_code(own)
    except SIGTERMException:  # Lightning's own stop on SIGTERM (outside the training batches LastCheckpoint sees)
        sys.stderr.write("error: stopped by SIGTERM\n")
        code = 128 + 15
    except SystemExit as exit_:  # --help, --print_config, argument errors
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else EXIT_FAILED)
    finally:
        release_runs()
    if args is not None:
        if code:
            sys.exit(code)
        return
    exit_now(code)
