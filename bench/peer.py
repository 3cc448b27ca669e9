"""The CNN's headline: PyTorch's canonical MNIST example against ``cnn.yaml`` and ``cnn_fast.yaml``, side by side.

    python bench/peer.py [--data-dir ../shared/data] [--repeats 1] [--only peer cnn.yaml cnn_fast.yaml]
        [--threads N] [--epochs N] [--limit-batches N]

One run, the same torch threads for all: the peer (``bench/peer_pytorch_example.py``, the example's recipe in
plain PyTorch), ``python train.py fit --config configs/cnn.yaml`` and ``--config configs/cnn_fast.yaml``, each
its own process, interleaved in every repeat. After every epoch each is tested on the 10,000 official test
digits (the configs through ``probe.EpochProbe``, which tests without touching the training); the time to a
target is from the process's launch to the end of the first epoch that reaches it, the tests' own time taken
out. Writes ``bench/results/peer.json``; the ratio peer / config to 99.2 % is the CNN's headline speed figure.
``--epochs`` and ``--limit-batches`` shorten every run (smoke runs only: the figures mean nothing then).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness import PROBE_ENV, REPO, fit_command, measure, median, parser, probe_args, read_probe, write_result

TARGETS = [0.990, 0.992]
CONTENDERS = ("peer", "cnn.yaml", "cnn_fast.yaml")


def time_to(epochs: list[dict[str, Any]], launched: float, target: float) -> float | None:
    """Seconds from launch to the end of the first epoch at ``target`` test accuracy, earlier tests taken out."""
    tested = 0.0
    for epoch in epochs:
        if epoch["test_acc"] >= target:
            return epoch["wall"] - launched - tested
        tested += epoch["eval_s"]
    return None


def run_peer(
    data_dir: str, targets: list[float], threads: int, epochs: int | None, limit: int | None
) -> dict[str, Any]:
    command = [sys.executable, "bench/peer_pytorch_example.py", "--data-dir", data_dir, "--threads", str(threads)]
    command += ["--epochs", str(epochs)] if epochs else []
    command += ["--limit-batches", str(limit)] if limit else []
    run = measure(command)
    return summary(run.json_lines(), targets, run.launched, run.wall_s, run.max_rss_mb)


def run_config(
    config: str, data_dir: str, targets: list[float], threads: int, epochs: int | None, limit: int | None
) -> dict[str, Any]:
    extra = ["--config", f"configs/{config}", "--torch_threads", str(threads)]
    extra += ["--trainer.max_epochs", str(epochs)] if epochs else []
    extra += ["--trainer.limit_train_batches", str(limit)] if limit else []
    with tempfile.TemporaryDirectory() as root:
        out = Path(root) / "probe.jsonl"
        run = measure(fit_command(data_dir, root, *extra, *probe_args(out, evaluate=True)), PROBE_ENV)
        return summary(read_probe(out), targets, run.launched, run.wall_s, run.max_rss_mb)


def summary(
    epochs: list[dict[str, Any]], targets: list[float], launched: float, wall_s: float, rss_mb: float
) -> dict[str, Any]:
    """What a run gave: accuracy per epoch and at the end, times to the targets, the process without its tests."""
    return {
        "epochs": len(epochs),
        "test_acc_per_epoch": [epoch["test_acc"] for epoch in epochs],
        "final_test_acc": epochs[-1]["test_acc"],
        "time_to": {f"{target:.3f}": time_to(epochs, launched, target) for target in targets},
        "wall_s": wall_s - sum(epoch["eval_s"] for epoch in epochs),
        "rss_mb": rss_mb,
    }


def reached(runs: list[dict[str, Any]], target: float) -> float | None:
    """The median time to ``target`` over the runs that reached it (None when none did)."""
    return median([t for r in runs if (t := r["time_to"][f"{target:.3f}"]) is not None])


def main() -> int:
    options = parser(__doc__, repeats=1)
    options.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    options.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads, for all")
    options.add_argument("--epochs", type=int, default=None, help="epochs of every run (smoke runs)")
    options.add_argument("--limit-batches", type=int, default=None, help="training batches per epoch (smoke runs)")
    options.add_argument("--targets", type=float, nargs=2, default=TARGETS, help="test accuracies to time (smoke runs)")
    args = options.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    os.chdir(REPO)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.only}
    for repeat in range(args.repeats):
        for name in args.only:
            print(f"repeat {repeat + 1}/{args.repeats}: {name}", file=sys.stderr, flush=True)
            if name == "peer":
                runs[name].append(run_peer(data_dir, args.targets, args.threads, args.epochs, args.limit_batches))
            else:
                runs[name].append(
                    run_config(name, data_dir, args.targets, args.threads, args.epochs, args.limit_batches)
                )
    peer_to = reached(runs["peer"], args.targets[-1]) if "peer" in runs else None
    rows = []
    for name, done in runs.items():
        to_target = [reached(done, target) for target in args.targets]
        headline = peer_to / to_target[-1] if peer_to and to_target[-1] and name != "peer" else None
        label = "peer: pytorch/examples mnist recipe" if name == "peer" else f"`fit --config configs/{name}`"
        rows.append(
            [
                label,
                done[0]["epochs"],
                *to_target,
                median([r["final_test_acc"] for r in done]),
                median([r["wall_s"] for r in done]),
                max(r["rss_mb"] for r in done),
                headline,
            ]
        )
    headlines = [
        f"Headline: {row[0]} reaches {args.targets[-1]:.1%} in 1/{row[-1]:.2f} of the peer's time."
        for row in rows
        if row[-1] is not None
    ]
    write_result(
        args.results,
        "peer",
        "CNN time to accuracy: PyTorch's MNIST example against the CNN configs",
        [
            ["run", "", ""],
            ["epochs", "d", ""],
            *([f"to {target:.1%}", ".1f", " s"] for target in args.targets),
            ["final test acc", ".2%", ""],
            ["whole process", ".1f", " s"],
            ["peak RSS", ".0f", " MB"],
            [f"peer / this, to {args.targets[-1]:.1%}", ".2f", "x"],
        ],
        rows,
        notes=[
            f"All on {args.threads} torch threads, each run its own process, interleaved in every repeat; medians "
            f"of {args.repeats} repeat(s). Times run from the process's launch to the end of the first epoch whose "
            "test accuracy reaches the target; the per-epoch tests' own time is taken out (also of the whole "
            'process). "-": never reached. The peer\'s recipe: Adadelta lr 1.0, StepLR gamma 0.7, batch 64, 14 epochs.',
            *headlines,
        ],
        raw={"runs": runs, "threads": args.threads, "repeats": args.repeats},
    )
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
