"""Parity: ``train.py fit`` against the same training in a plain PyTorch loop, with thresholds.

    python bench/parity.py [--data-dir ../shared/data] [--repeats 3] [--only linear cnn]
        [--epochs N] [--limit-batches N]

As Lightning's own ``tests/parity_pytorch``: the same data, model, optimizer, schedule, seed and threads, once
through ``train.py fit`` and once through ``bench/plain_loop.py``, each its own process, interleaved in every
repeat. The check passes when the final models' test accuracies differ by at most the tolerance and the median
ratio of the training time (the sum of the epochs, validation excluded) stays under the threshold. It is a
benchmark, not a test: it writes ``bench/results/parity.json`` with pass or fail and exits 1 on a failure.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import (
    PROBE_ENV,
    REPO,
    fit_command,
    measure,
    median,
    parser,
    probe_args,
    read_probe,
    write_result,
)


@dataclass(frozen=True)
class Case:
    """One model the check holds to the plain loop, and how close it must stay."""

    config: str | None
    threads: int
    max_time_ratio: float
    accuracy_tolerance: float


CORES = len(os.sched_getaffinity(0))
CASES = {
    "linear": Case(None, 1, 1.45, 0.005),
    "cnn": Case("configs/cnn.yaml", CORES, 1.15, 0.003),
}


def final_accuracy(root: str, data_dir: str) -> float:
    """Test accuracy of the run's last checkpoint: the model the plain loop's figure is compared with."""
    import torch

    from mnist_lightning import MNISTDataModule, load_model
    from mnist_lightning.checkpoint import resolve_checkpoint

    path, _ = resolve_checkpoint("last", Path(root) / "lightning_logs")
    model = load_model(path)
    images, labels = MNISTDataModule(data_dir=data_dir, download=False).split("test")
    with torch.no_grad():
        predictions = torch.cat([model(chunk).argmax(1) for chunk in images.split(1000)])
    return (predictions == labels).float().mean().item()


def with_lightning(case: Case, data_dir: str, epochs: int | None, limit: int | None) -> dict:
    extra = ["--torch_threads", str(case.threads), *(["--config", case.config] if case.config else [])]
    extra += ["--trainer.max_epochs", str(epochs)] if epochs else []
    extra += ["--trainer.limit_train_batches", str(limit)] if limit else []
    with tempfile.TemporaryDirectory() as root:
        out = Path(root) / "probe.jsonl"
        run = measure(fit_command(data_dir, root, *extra, *probe_args(out, evaluate=False)), PROBE_ENV)
        train_s = sum(epoch["train_s"] for epoch in read_probe(out))
        return {
            "train_s": train_s,
            "wall_s": run.wall_s,
            "rss_mb": run.max_rss_mb,
            "test_acc": final_accuracy(root, data_dir),
        }


def plain(case: Case, data_dir: str, epochs: int | None, limit: int | None) -> dict:
    command = [sys.executable, "bench/plain_loop.py", "--data-dir", data_dir, "--threads", str(case.threads)]
    command += ["--config", case.config] if case.config else []
    command += ["--epochs", str(epochs)] if epochs else []
    command += ["--limit-batches", str(limit)] if limit else []
    run = measure(command)
    (record,) = run.json_lines()
    return {
        "train_s": sum(record["epoch_s"]),
        "wall_s": run.wall_s,
        "rss_mb": run.max_rss_mb,
        "test_acc": record["test_acc"],
    }


def verdict(case: Case, runs: dict[str, list[dict]]) -> dict:
    """The median time ratio and accuracy gap, and whether both are within the case's bounds."""
    ratio = median([f["train_s"] / p["train_s"] for f, p in zip(runs["fit"], runs["plain"], strict=True)])
    gap = abs(median([r["test_acc"] for r in runs["fit"]]) - median([r["test_acc"] for r in runs["plain"]]))
    return {
        "time_ratio": ratio,
        "accuracy_gap": gap,
        "passed": ratio <= case.max_time_ratio and gap <= case.accuracy_tolerance,
    }


def main() -> int:
    options = parser(__doc__)
    options.add_argument("--only", nargs="+", choices=list(CASES), default=list(CASES))
    options.add_argument("--epochs", type=int, default=None, help="epochs of each run (default: the config's)")
    options.add_argument("--limit-batches", type=int, default=None, help="training batches per epoch (smoke runs)")
    args = options.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    os.chdir(REPO)
    runs = {name: {"fit": [], "plain": []} for name in args.only}
    for repeat in range(args.repeats):
        for name in args.only:
            print(f"repeat {repeat + 1}/{args.repeats}: {name}", file=sys.stderr, flush=True)
            case = CASES[name]
            runs[name]["fit"].append(with_lightning(case, data_dir, args.epochs, args.limit_batches))
            runs[name]["plain"].append(plain(case, data_dir, args.epochs, args.limit_batches))
    rows, verdicts = [], {}
    for name in args.only:
        case, verdicts[name] = CASES[name], verdict(CASES[name], runs[name])
        fit, loop = runs[name]["fit"], runs[name]["plain"]
        rows.append(
            [
                f"`fit --config {case.config}`" if case.config else "`fit` (default, linear)",
                case.threads,
                median([r["train_s"] for r in fit]),
                median([r["train_s"] for r in loop]),
                verdicts[name]["time_ratio"],
                case.max_time_ratio,
                median([r["test_acc"] for r in fit]),
                median([r["test_acc"] for r in loop]),
                case.accuracy_tolerance,
                "pass" if verdicts[name]["passed"] else "FAIL",
            ]
        )
    passed = all(v["passed"] for v in verdicts.values())
    write_result(
        args.results,
        "parity",
        "Parity: `train.py fit` against the same training in a plain PyTorch loop",
        [
            ["run", "", ""],
            ["threads", "d", ""],
            ["training, fit", ".2f", " s"],
            ["training, plain loop", ".2f", " s"],
            ["fit / plain", ".2f", "x"],
            ["at most", ".2f", "x"],
            ["test acc, fit", ".2%", ""],
            ["test acc, plain", ".2%", ""],
            ["tolerance", ".1%", ""],
            ["check", "", ""],
        ],
        rows,
        notes=[
            "Same data, model, optimizer, schedule, seed and threads; each run its own process, interleaved in every "
            "repeat. Training is the sum of the epochs, validation excluded; the ratio is the median of the "
            "repeats' ratios; test accuracy is the final model's (the last checkpoint against the plain loop's).",
        ],
        raw={"runs": runs, "verdicts": verdicts, "repeats": args.repeats},
        passed=passed,
    )
    for name, result in verdicts.items():
        print(f"{name}: {'pass' if result['passed'] else 'FAIL'} {result}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
