"""The one place that ends a command: its errors become one line and an exit code by the rule below.

The rule: 0 done; 2 refused before anything ran (a bad option or value, a config file, a checkpoint or run folder
that is missing or refused, a run another process trains); 1 failed while running (the data could not be read or
fetched, training diverged, a file could not be written); 128+N stopped by signal N (143 for SIGTERM, 130 for
Ctrl+C). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from mnist_lightning.cli.exit import own_error, silence_library_noise
from mnist_lightning.errors import CheckpointError, ConfigError

Main = Callable[[Sequence[str]], int]
EXIT_FAILED = 1
"""The command started and failed: data, divergence, writing."""
EXIT_REFUSED = 2
"""The command was refused before it ran: options, config files, checkpoints, run folders."""


def exit_code(err: Exception) -> int:
    """The exit code for one of the project's errors (:func:`own_error`), by the rule above; an error that
    stopped on a signal carries its own (``TrainingInterruptedError.exit_code``)."""
    if isinstance(err, ConfigError | CheckpointError):
        return EXIT_REFUSED
    return getattr(err, "exit_code", EXIT_FAILED)


def run(main: Main, argv: Sequence[str] | None = None) -> int:
    """Run ``main`` on ``argv`` (the process's arguments by default); the exit code by the rule above."""
    silence_library_noise()
    try:
        return main(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # argparse's --help and usage errors print their own message
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        sys.stderr.write(f"error: {exit_.code}\n")  # sys.exit("message"), as Python itself would end
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("error: stopped by Ctrl+C\n")
        return 128 + 2
    except Exception as err:
        own = own_error(err)
        if own is None:
            raise
        sys.stderr.write(f"error: {own}\n")
        return exit_code(own)


def entry(main: Main, end: Callable[[int], NoReturn] = sys.exit) -> Callable[[], NoReturn]:
    """A ``[project.scripts]`` entry point for ``main``: runs it on the process's arguments, then ends the process
    with ``end(exit code)`` (``train.py`` passes its fast exit)."""

    def console_script() -> NoReturn:
        end(run(main))

    return console_script
