"""``NullProfiler``: Lightning's default "no profiler", without the cost it still has at every hook."""

from __future__ import annotations

import contextlib

from lightning.pytorch.profilers import PassThroughProfiler


class NullProfiler(PassThroughProfiler):
    """Records nothing, like Lightning's default ``PassThroughProfiler``, at a fraction of its cost per step.

    Lightning enters ``trainer.profiler.profile(name)`` around every hook of every callback, the model and the
    strategy, several times per callback at every training step; the default's ``profile`` is a generator-based
    context manager that does nothing yet is built and run at each of those calls. This one hands back one shared
    ``nullcontext``. The CLI uses it when no ``--trainer.profiler`` is given (bench/RESULTS.md, epoch section).
    """

    _NOTHING = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:  # type: ignore[override]
        return self._NOTHING
