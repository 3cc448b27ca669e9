"""Benchmark: the tutorial, scikit-learn and this project side by side, on this machine, in one run.

    python bench/run.py [--data-dir ../shared/data] [--repeats 3]

Runs every contender as its own process (so imports and start-up count), repeats each, reports medians,
prints a Markdown report and writes it to bench/RESULTS.md. Needs the ``bench`` extra (scikit-learn).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
TARGET_ACC = 0.925


@dataclass
class Run:
    wall_s: float
    max_rss_mb: float
    stdout: str

    def json(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


def measure(command: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``command`` to completion; its wall time and its own peak resident memory."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, cwd=REPO, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {process.returncode}")
    return Run(wall, usage.ru_maxrss / 1024, stdout)


def median(values: list[float]) -> float:
    return statistics.median(values)


def fit_command(data_dir: str, root: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "train.py",
        "fit",
        "--data.data_dir",
        data_dir,
        "--trainer.default_root_dir",
        root,
        "--trainer.enable_progress_bar",
        "false",
        *extra,
    ]


def test_accuracy_of_best(root: str, data_dir: str) -> float:
    """Test accuracy of the run's best checkpoint, evaluated here without Lightning."""
    import torch

    from mnist_lightning import MNISTDataModule, load_model
    from mnist_lightning.checkpoint import resolve_checkpoint

    path, _ = resolve_checkpoint("best", Path(root) / "lightning_logs")
    model = load_model(path)
    images, labels = MNISTDataModule(data_dir=data_dir, download=False).split("test")
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


def probe_args(out: Path, evaluate: bool) -> list[str]:
    return [
        "--trainer.callbacks+=probe.EpochProbe",
        "--trainer.callbacks.out",
        str(out),
        "--trainer.callbacks.evaluate",
        str(evaluate).lower(),
    ]


PROBE_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])}


def bench_fit(data_dir: str, repeats: int) -> dict:
    """Timed default fits (a clock callback records each epoch's training time) and one instrumented fit
    that evaluates the test set after every epoch (its evaluations are not timed)."""
    with tempfile.TemporaryDirectory() as root:
        out = Path(root) / "probe.jsonl"
        measure(fit_command(data_dir, root, *probe_args(out, evaluate=True)), PROBE_ENV)
        accuracy = [json.loads(line)["test_acc"] for line in out.read_text().splitlines()]
    epochs_to_target = next((k + 1 for k, acc in enumerate(accuracy) if acc >= TARGET_ACC), None)
    walls, rss, accs, epoch_s, to_target = [], [], [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as root:
            out = Path(root) / "probe.jsonl"
            launched = time.time()
            run = measure(fit_command(data_dir, root, *probe_args(out, evaluate=False)), PROBE_ENV)
            epochs = [json.loads(line) for line in out.read_text().splitlines()]
            walls.append(run.wall_s)
            rss.append(run.max_rss_mb)
            accs.append(test_accuracy_of_best(root, data_dir))
            epoch_s.append(median([e["train_s"] for e in epochs]))
            if epochs_to_target:
                to_target.append(epochs[epochs_to_target - 1]["wall"] - launched)
    return {
        "wall_s": walls,
        "rss_mb": rss,
        "test_acc": accs,
        "epoch_s": epoch_s,
        "time_to_target_s": to_target,
        "epochs_to_target": epochs_to_target,
        "test_acc_per_epoch": accuracy,
    }


def bench_script(script: str, data_dir: str, repeats: int, *extra: str, python: str = sys.executable) -> dict:
    runs = [measure([python, str(BENCH / script), "--data-dir", data_dir, *extra]) for _ in range(repeats)]
    return {
        "wall_s": [r.wall_s for r in runs],
        "rss_mb": [r.max_rss_mb for r in runs],
        "json": [r.json() for r in runs],
    }


def report(results: dict, args: argparse.Namespace) -> str:
    tutorial, sklearn, plain = results["tutorial"], results["sklearn"], results["plain"]
    fit = results["fit"]
    tutorial_epoch = median([t for run in tutorial["json"] for t in run["epoch_s"]])
    tutorial_acc = median([run["test_acc"][-1] for run in tutorial["json"]])
    plain_epoch = median([t for run in plain["json"] for t in run["epoch_s"]])
    plain_acc = median([run["test_acc"] for run in plain["json"]])
    fit_epoch = median(fit["epoch_s"])
    fit_wall, fit_acc, fit_rss = median(fit["wall_s"]), median(fit["test_acc"]), max(fit["rss_mb"])
    sk_wall = median(sklearn["wall_s"])
    sk_fit = median([run["fit_s"] for run in sklearn["json"]])
    sk_acc = median([run["test_acc"] for run in sklearn["json"]])
    (sk50,) = results["sklearn_50k"]["json"]
    time_to = median(fit["time_to_target_s"]) if fit["time_to_target_s"] else None

    def secs(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f} s"

    scipy_here = importlib.util.find_spec("scipy") is not None
    environment = (
        "scikit-learn ran in its own environment; train.py ran as the README installs it"
        if args.sklearn_python != sys.executable
        else "all contenders ran in one environment"
    )
    lines = [
        "# Benchmark results",
        "",
        f"`python bench/run.py --repeats {args.repeats}` on {platform.node() or 'this machine'}: {os.cpu_count()} CPU "
        f"cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}. Every contender runs as its own "
        "process (imports and start-up included); figures are medians of the repeats, measured in one invocation. "
        f"{environment} (scipy {'importable' if scipy_here else 'not installed'} beside Lightning).",
        "",
        "| contender | training epoch | test accuracy | whole process | peak RSS |",
        "| --- | --- | --- | --- | --- |",
        f"| tutorial (ToTensor per sample, batch 100, SGD lr 0.001, 2 threads) | {tutorial_epoch:.2f} s | "
        f"{tutorial_acc:.2%} after 5 epochs | {median(tutorial['wall_s']):.1f} s | {max(tutorial['rss_mb']):.0f} MB |",
        f"| scikit-learn LogisticRegression (lbfgs, C=0.1, standardized, 60k images) | - | {sk_acc:.2%} | "
        f"{sk_wall:.1f} s (fit {sk_fit:.1f} s) | {max(sklearn['rss_mb']):.0f} MB |",
        f"| scikit-learn, same settings, on this project's 50k training split | - | {sk50['test_acc']:.2%} | "
        f"{results['sklearn_50k']['wall_s'][0]:.1f} s (fit {sk50['fit_s']:.1f} s) | - |",
        f"| this project's data path + model in a plain loop (12 epochs) | {plain_epoch:.3f} s | {plain_acc:.2%} | "
        f"{median(plain['wall_s']):.1f} s | {max(plain['rss_mb']):.0f} MB |",
        f"| **`python train.py fit`** (defaults, 12 epochs) | **{fit_epoch:.3f} s** | **{fit_acc:.2%}** "
        f"(best checkpoint) | **{fit_wall:.1f} s** | **{fit_rss:.0f} MB** |",
        "",
        f"- Training epoch inside `fit`, against the tutorial's epoch: **{tutorial_epoch / fit_epoch:.0f}x** faster "
        f"(target 20x). Lightning's share of it: {fit_epoch - plain_epoch:+.3f} s per epoch over the plain loop.",
        f"- Default `fit`, whole process, against scikit-learn's whole process: **{sk_wall / fit_wall:.1f}x** faster "
        f"(target 2x), at {fit_acc:.2%} against {sk_acc:.2%} test accuracy ({sk50['test_acc']:.2%} when scikit-learn "
        "trains on the same 50k images); against the tutorial's whole process: "
        f"{median(tutorial['wall_s']) / fit_wall:.1f}x.",
        f"- Time to {TARGET_ACC:.1%} test accuracy in `fit`, from process start to the end of the first epoch "
        "that reaches it: "
        f"**{secs(time_to)}** (epoch {fit['epochs_to_target']}).",
        f"- Peak RSS of the default `fit`: **{fit_rss:.0f} MB** (target under 1,536 MB).",
        "",
        "Test accuracy after each epoch of the instrumented `fit`: "
        + ", ".join(f"{acc:.2%}" for acc in fit["test_acc_per_epoch"])
        + ".",
        "",
        "Where a training epoch of `fit` goes (`python bench/profile_epoch.py`: the PyTorch profiler over two "
        "epochs, 98 steps; the arithmetic is `addmm` (forward), `mm` (weight gradient), `index_select` (the batch "
        "gather) and the softmax; the `Optimizer.step` row's self time is Lightning's per-step Python around them):",
        "",
        "```",
        results["profile"].strip(),
        "```",
        "",
        "Raw figures (seconds, MB):",
        "",
        "```json",
        json.dumps({k: v for k, v in results.items() if k != "profile"}, indent=1, default=float),
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = REPO.parent / "shared" / "data"
    parser.add_argument("--data-dir", default=str(default_data if default_data.is_dir() else REPO / "data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tutorial-repeats", type=int, default=1, help="each run is 5 epochs: 5 epoch timings")
    parser.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    parser.add_argument(
        "--sklearn-python",
        default=sys.executable,
        help="interpreter for the scikit-learn contender (default: this one). scikit-learn pulls in scipy, which "
        "torchmetrics then imports at every Lightning start (about +1.5 s): give scikit-learn its own environment "
        "to time train.py as the README installs it",
    )
    args = parser.parse_args()
    data_dir = str(Path(args.data_dir).resolve())

    results = {}
    steps = [
        ("tutorial", lambda: bench_script("tutorial.py", data_dir, args.tutorial_repeats)),
        ("sklearn", lambda: bench_script("sklearn_logreg.py", data_dir, args.repeats, python=args.sklearn_python)),
        (
            "sklearn_50k",
            lambda: bench_script("sklearn_logreg.py", data_dir, 1, "--same-split", python=args.sklearn_python),
        ),
        ("plain", lambda: bench_script("plain_loop.py", data_dir, args.repeats)),
        ("fit", lambda: bench_fit(data_dir, args.repeats)),
        ("profile", lambda: measure([sys.executable, str(BENCH / "profile_epoch.py"), "--data-dir", data_dir]).stdout),
    ]
    for name, step in steps:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = step()
    text = report(results, args)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
