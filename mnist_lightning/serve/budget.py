"""A wall-clock budget for one piece of work in an inference worker, so that one costly image cannot keep the
worker (and every request queued behind it) busy; and memory that a decoded image frees going back to the system.

Python cannot stop a thread from outside, so the budget interrupts the worker's own main thread: a ``SIGALRM``
timer raises :class:`OverBudget` there. The interruption lands between Python bytecodes, so a single long call
into C (one torch or PIL operation) finishes first; preprocessing keeps every such call short. Outside the main
thread (where signals cannot be handled) the work runs without a budget.
"""

import ctypes
import ctypes.util
import os
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


M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
"""mallopt's parameter numbers (glibc's malloc.h)."""
ARENAS = 2
"""glibc malloc arenas a server process may use: one per thread by default, each keeping what it freed."""
MMAP_THRESHOLD = 1 << 20
"""Allocations from this size (a decoded image's pixels) are mapped on their own and unmapped when freed."""


def return_freed_memory() -> None:
    """Make the decoded images' memory go back to the system when they are freed.

    glibc keeps freed blocks for reuse, in one arena per thread, and raises its threshold for giving large blocks
    back after the first one is freed: a server decoding large uploads in many threads then holds gigabytes it no
    longer uses. Set for this process (before the server forks its HTTP processes, which inherit it) and, through
    the environment glibc reads at start, for the inference workers it spawns. Elsewhere than glibc, a no-op."""
    os.environ.setdefault("MALLOC_ARENA_MAX", str(ARENAS))
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_ARENA_MAX, ARENAS)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass
