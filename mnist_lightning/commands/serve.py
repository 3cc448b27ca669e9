"""Serve a trained checkpoint (or the CNN the package ships) with a page to draw digits on and a JSON API.

    mnist-serve [--ckpt best|last|PATH] [--root DIR] [--host 127.0.0.1] [--port 8000] [--workers 1] [--collect DIR]

Without ``--ckpt`` it serves the trained CNN shipped with the package (``inference.SHIPPED_MODEL``) and says so.
``best`` and ``last`` are found as ``train.py`` finds them, in ``DIR/lightning_logs`` (DIR: the run's
``--trainer.default_root_dir``, the current folder by default). Checks that the port is free, prints the
address to open, then serves until Ctrl+C or SIGTERM (``kill PID``), which stop it quietly with exit code 0.
The exit code is 2 for bad arguments, an unusable checkpoint or a port in use; 130 (Ctrl+C) or 143 (SIGTERM)
when stopped before the server was up.

With ``--collect DIR`` the page offers "Wrong? It is a [0-9]" under each prediction: a press saves the drawing
as ``DIR/<digit>/<uuid>.png`` (torchvision's ImageFolder layout), for fine-tuning with
``train.py fit --data.extra_dirs '[DIR]' --model.init_from CHECKPOINT``. Off by default.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from mnist_lightning.checkpoint import resolve_checkpoint
from mnist_lightning.commands.options import Parser, megabytes, named, seconds, whole
from mnist_lightning.commands.runner import entry
from mnist_lightning.errors import ConfigError
from mnist_lightning.inference import SHIPPED_MODEL, shipped_summary
from mnist_lightning.serve.app import IMAGE_TIMEOUT_S, create_server
from mnist_lightning.serve.body import UPLOAD_DEADLINE_S, UploadLimits
from mnist_lightning.serve.collect import MAX_FILES, MAX_IMAGE_BYTES, MAX_TOTAL_BYTES, open_collection

HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # the hosts LitServer.run accepts
MAX_BATCH_SIZE = 1
"""Batching off: as fast as on under load (the API server, not the model, is the bottleneck) with a lower p99;
see README "Draw a digit in a browser" for the measurement."""


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


def checkpoint_path(ckpt: str | None, root: Path) -> Path:
    """``ckpt`` itself, the latest run's best/last checkpoint under ``root/lightning_logs``, or the shipped model."""
    if ckpt is None:
        print(f"No --ckpt: serving {shipped_summary()}", file=sys.stderr)
        return SHIPPED_MODEL
    if ckpt not in ("best", "last"):
        return Path(ckpt)
    path, notes = resolve_checkpoint(ckpt, root / "lightning_logs", option="--ckpt")
    for note in notes:
        print(note, file=sys.stderr)
    return path


def announce_when_ready(url: str, line: str) -> None:
    """Print ``line`` once ``url`` answers ``GET /health`` with 200 (LitServe's word that every worker has loaded
    the model), from a thread beside the server: an address printed before that is refused for seconds."""

    def wait() -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
        while True:
            try:
                with opener.open(url + "health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:  # not listening yet, or 503 while the workers load
                pass
            time.sleep(0.1)
        print(line, flush=True)

    threading.Thread(target=wait, name="announce", daemon=True).start()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = Parser("mnist-serve", __doc__)
    parser.add_argument(
        "--ckpt",
        type=named,
        default=None,
        help="best, last, or the path of a checkpoint written by train.py (default: the CNN the package ships)",
    )
    parser.add_argument(
        "--root",
        type=lambda value: Path(named(value)),
        default=Path("."),
        help="where train.py ran (holds lightning_logs/)",
    )
    parser.add_argument("--host", choices=HOSTS, default="127.0.0.1", help="0.0.0.0 serves other machines too")
    parser.add_argument("--port", type=whole(1024, 65535), default=8000)
    parser.add_argument("--workers", type=whole(1), default=1, help="inference processes, one model each")
    parser.add_argument("--max-batch-size", type=whole(1), default=MAX_BATCH_SIZE, help="1 turns batching off")
    parser.add_argument(
        "--batch-timeout", type=seconds(zero=True), default=0.001, help="seconds to wait for a batch to fill"
    )
    parser.add_argument(
        "--upload-timeout", type=seconds(), default=UPLOAD_DEADLINE_S, help="seconds a body may take (408)"
    )
    parser.add_argument(
        "--image-timeout", type=seconds(), default=IMAGE_TIMEOUT_S, help="seconds a worker may spend on one image (422)"
    )
    collect = parser.add_argument_group("corrections (off unless --collect is given)")
    collect.add_argument(
        "--collect",
        type=lambda value: Path(named(value)),
        metavar="DIR",
        help="save the page's corrections into DIR as DIR/<digit>/<uuid>.png (created if missing)",
    )
    collect.add_argument(
        "--collect-max-files",
        type=whole(1),
        default=MAX_FILES,
        metavar="N",
        help="corrections DIR may hold (%(default)s)",
    )
    collect.add_argument(
        "--collect-max-mb",
        type=megabytes,
        metavar="MB",
        default=MAX_TOTAL_BYTES,
        help=f"MB of corrections DIR may hold ({MAX_TOTAL_BYTES // 2**20})",
    )
    collect.add_argument(
        "--collect-max-image-mb",
        type=megabytes,
        metavar="MB",
        default=MAX_IMAGE_BYTES,
        help=f"MB one correction may have ({MAX_IMAGE_BYTES / 2**20:g})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    path = checkpoint_path(args.ckpt, args.root)
    collecting = None
    if args.collect is not None:
        collecting = open_collection(
            args.collect, args.collect_max_image_mb, args.collect_max_files, args.collect_max_mb
        )
    limits = UploadLimits(deadline_s=args.upload_timeout)
    server = create_server(
        path, args.workers, args.max_batch_size, args.batch_timeout, limits, args.image_timeout, collection=collecting
    )
    if (err := port_in_use(args.host, args.port)) is not None:
        where, reason = f"{args.host}:{args.port}", err.strerror or str(err)
        raise ConfigError(f"cannot serve on {where} ({reason}): stop what uses it or pass another --port")
    shown = "127.0.0.1" if args.host == "0.0.0.0" else f"[{args.host}]" if ":" in args.host else args.host
    stop_quietly(os.getpid())
    try:
        print(f"Loading {path} into {args.workers} worker(s)...", flush=True)
        if collecting is not None:
            print(f"Saving corrections into {collecting.folder}/<digit>/", flush=True)
        url = f"http://{shown}:{args.port}/"
        announce_when_ready(url, f"Serving {path}: open {url} to draw a digit (Ctrl+C stops)")
        server.run(host=args.host, port=args.port, log_level="warning", generate_client_file=False)
    except Stopped as stopped:  # stopped while the workers were still starting: LitServer has not shut them down
        stop_children()
        return stopped.exit_code
    return 0


cli = entry(main)

if __name__ == "__main__":
    cli()
