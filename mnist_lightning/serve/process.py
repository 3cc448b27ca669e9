"""The server as a process: whether its port is free, and stopping it quietly on Ctrl+C or SIGTERM, its worker
processes included (LitServer forks and spawns them)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
from types import FrameType


def port_in_use(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be bound right now (bound the way uvicorn binds it), or None when it can."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            return err
    return None


class Stopped(KeyboardInterrupt):
    """SIGTERM or Ctrl+C in the main process: LitServer shuts its workers down on ``KeyboardInterrupt``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def stop_quietly(main_pid: int) -> None:
    """Make SIGTERM and Ctrl+C a stop, not an error, in this process and in the processes it forks.

    The main process raises :class:`Stopped` (LitServer's graceful shutdown). LitServer forks its API server,
    which inherits this handler: uvicorn stops it on the signal and then raises the signal again with the
    inherited handler, which must end the process quietly rather than with a ``KeyboardInterrupt`` traceback.

    A signal that arrives while the main thread runs a weakref callback or a ``__del__`` (logging's
    ``_removeHandlerRef``, during start-up) raises :class:`Stopped` where Python only prints "Exception ignored"
    and carries on: the server would never stop. ``sys.unraisablehook`` catches that one case and sends the signal
    again a moment later, from another thread, to be raised where it can unwind.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != main_pid:
            raise SystemExit(0)
        raise Stopped(signum)

    def stop_again(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, Stopped) and os.getpid() == main_pid:
            threading.Timer(0.01, os.kill, (main_pid, unraisable.exc_value.signum)).start()  # once out of it
        else:
            report_unraisable(unraisable)

    report_unraisable = sys.unraisablehook
    sys.unraisablehook = stop_again
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)


def stop_children(wait_s: float = 10.0) -> None:
    """Terminate the processes LitServer started (workers still loading the model, its manager), and wait for them:
    left alone, a worker that finishes loading after we exit reports to a manager that is gone, with a traceback."""
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(wait_s)
