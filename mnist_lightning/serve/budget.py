"""A wall-clock budget for one piece of work in an inference worker, so that one costly image cannot keep the
worker (and every request queued behind it) busy.

Python cannot stop a thread from outside, so the budget interrupts the worker's own main thread: a ``SIGALRM``
timer raises :class:`OverBudget` there. The interruption lands between Python bytecodes, so a single long call
into C (one torch or PIL operation) finishes first; preprocessing keeps every such call short. Outside the main
thread (where signals cannot be handled) the work runs without a budget.
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class OverBudget(BaseException):
    """The budget ran out. A ``BaseException`` (like ``KeyboardInterrupt``), so that no ``except Exception``
    in the libraries doing the work can swallow it."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`OverBudget` in the body once it has run ``seconds`` (wall clock); ``seconds <= 0``: no budget."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = True

    def expire(signum: int, frame: FrameType | None) -> None:
        if armed:  # a timer that fires just as the body ends must not raise outside it
            raise OverBudget

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
