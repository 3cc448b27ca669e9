"""Serve a trained checkpoint with a page to draw digits on and a JSON API.

    python -m mnist_lightning.serve --ckpt best|last|PATH [--root DIR] [--host 127.0.0.1] [--port 8000] [--workers 1]

``best`` and ``last`` are found as ``train.py`` finds them, in ``DIR/lightning_logs`` (DIR: the run's
``--trainer.default_root_dir``, the current folder by default). Prints the address to open, then serves until
Ctrl+C. The exit code is 2 for bad arguments or an unusable checkpoint.
"""

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from mnist_lightning.checkpoint import resolve_checkpoint
from mnist_lightning.errors import CheckpointError
from mnist_lightning.serve.app import create_server
from mnist_lightning.serve.body import UPLOAD_DEADLINE_S, UploadLimits

HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # the hosts LitServer.run accepts
MAX_BATCH_SIZE = 1
"""Batching off: as fast as on under load (the API server, not the model, is the bottleneck) with a lower p99;
see README "Draw a digit in a browser" for the measurement."""


def checkpoint_path(ckpt: str, root: Path) -> Path:
    """``ckpt`` itself, or the latest run's best/last checkpoint under ``root/lightning_logs``."""
    if ckpt not in ("best", "last"):
        return Path(ckpt)
    path, notes = resolve_checkpoint(ckpt, root / "lightning_logs")
    for note in notes:
        print(note, file=sys.stderr)
    return path


def port(value: str) -> int:
    number = int(value)
    if not 1024 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port from 1024 to 65535")
    return number


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lightning.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ckpt", required=True, help="best, last, or the path of a checkpoint written by train.py")
    parser.add_argument("--root", type=Path, default=Path("."), help="where train.py ran (holds lightning_logs/)")
    parser.add_argument("--host", choices=HOSTS, default="127.0.0.1", help="0.0.0.0 serves other machines too")
    parser.add_argument("--port", type=port, default=8000)
    parser.add_argument("--workers", type=positive, default=1, help="inference processes, one model each")
    parser.add_argument("--max-batch-size", type=positive, default=MAX_BATCH_SIZE, help="1 turns batching off")
    parser.add_argument("--batch-timeout", type=float, default=0.001, help="seconds to wait for a batch to fill")
    parser.add_argument("--upload-timeout", type=float, default=UPLOAD_DEADLINE_S, help="seconds a body may take (408)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        path = checkpoint_path(args.ckpt, args.root)
        limits = UploadLimits(deadline_s=args.upload_timeout)
        server = create_server(path, args.workers, args.max_batch_size, args.batch_timeout, limits)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    shown = "127.0.0.1" if args.host == "0.0.0.0" else f"[{args.host}]" if ":" in args.host else args.host
    print(f"Serving {path}: open http://{shown}:{args.port}/ to draw a digit (Ctrl+C stops)", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # LitServe shuts its workers down on Ctrl+C only
    try:
        server.run(host=args.host, port=args.port, log_level="warning", generate_client_file=False)
    except KeyboardInterrupt:  # stopped while the workers were still starting
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
