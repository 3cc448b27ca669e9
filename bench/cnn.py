"""Benchmark: the CNN configs against the default LitLogReg run, and Lightning against a plain loop.

    python bench/cnn.py [--data-dir ../shared/data] [--repeats 3] [--configs cnn.yaml ...] [--bf16]
        [--seeds 1 2 3] [--no-plain]

Per repeat, interleaved so that the machine's load affects all alike: the default ``train.py fit`` and
``fit --config configs/<config>`` (whole processes; the test accuracy of each run's best checkpoint), and
``bench/plain_loop.py`` with the same config (the same batches, model, optimizer and threads, no Lightning);
with ``--bf16`` also each config with ``--trainer.precision bf16-mixed`` (bf16 autocast on the CPU).
With ``--seeds``, each repeat runs every config once per seed (``--seed_everything N --data.seed N``: weights,
dropout, split, shuffling and augmentation all change; the test set does not), after one default fit.
Medians are written as a section of bench/RESULTS.md, one section per set of configs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from run import BENCH, PROBE_ENV, REPO, fit_command, measure, median, probe_args, test_accuracy_of_best
from sections import write_section


def timed_fit(data_dir: str, *extra: str) -> dict:
    """One whole ``train.py fit`` process: wall time, CPU threads' training time per epoch, best test accuracy."""
    with tempfile.TemporaryDirectory() as root:
        out = Path(root) / "probe.jsonl"
        run = measure(fit_command(data_dir, root, *extra, *probe_args(out, evaluate=False)), PROBE_ENV)
        epochs = [json.loads(line) for line in out.read_text().splitlines()]
        return {
            "wall_s": run.wall_s,
            "train_s": sum(e["train_s"] for e in epochs),
            "test_acc": test_accuracy_of_best(root, data_dir),
        }


def plain(data_dir: str, config: str, threads: int) -> dict:
    command = [sys.executable, str(BENCH / "plain_loop.py"), "--data-dir", data_dir, "--config", config]
    run = measure([*command, "--threads", str(threads)])
    return {"wall_s": run.wall_s, "train_s": sum(run.json()["epoch_s"]), "test_acc": run.json()["test_acc"]}


def seed_args(seed: int | None) -> list[str]:
    """What one seed of a run means: the weights and dropout (``seed_everything``) and the data's split,
    shuffling and augmentation (``data.seed``)."""
    return [] if seed is None else ["--seed_everything", str(seed), "--data.seed", str(seed)]


def heading(configs: list[str]) -> str:
    """One section per set of configs, so that benchmarking one config keeps the others' figures."""
    title = "## CNN: whole fit against the default run, Lightning against a plain loop"
    return title if configs == ["cnn.yaml"] else f"{title} ({', '.join(configs)})"


def report(results: dict, configs: list[str], threads: int, command: str) -> str:
    base = results["default"]
    base_wall = median([r["wall_s"] for r in base])
    lines = [
        heading(configs),
        "",
        f"`{command}` on {platform.node()}: "
        f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}. Each repeat runs every contender once, interleaved; "
        "medians. CNN runs use `--torch_threads auto` "
        f"({threads} threads here), the default run 1 thread. Training time is the sum of the epochs' training "
        "(validation excluded); the plain loop trains the same batches, model, optimizer and threads without "
        "Lightning.",
        "",
        "| run | whole process | vs default fit | training | Lightning / plain loop images/s | test accuracy |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| `python train.py fit` (LitLogReg, defaults) | {base_wall:.1f} s | 1.0x | "
        f"{median([r['train_s'] for r in base]):.1f} s | - | {median([r['test_acc'] for r in base]):.2%} |",
    ]
    for config in configs:
        fit, loop = results[config]["fit"], results[config]["plain"]
        per_seed = ", ".join(
            f"seed {r['seed']}: {r['wall_s']:.0f} s, {r['test_acc']:.2%}" for r in fit if r.get("seed") is not None
        )
        if "bf16" in results[config]:
            bf16 = results[config]["bf16"]
            wall = median([r["wall_s"] for r in bf16])
            lines.append(
                f"| `fit --config configs/{config} --trainer.precision bf16-mixed` | {wall:.1f} s | "
                f"{wall / base_wall:.2f}x | {median([r['train_s'] for r in bf16]):.1f} s | - | "
                f"{median([r['test_acc'] for r in bf16]):.2%} |"
            )
        wall = median([r["wall_s"] for r in fit])
        accuracies = ", ".join(f"{r['test_acc']:.2%}" for r in fit)
        lowest = min(r["test_acc"] for r in fit)
        training = f"{median([r['train_s'] for r in fit]):.1f} s"
        versus_plain = "-"
        if loop:
            ratios = [p["train_s"] / f["train_s"] for f, p in zip(fit, loop, strict=True)]
            training += f" (plain loop {median([r['train_s'] for r in loop]):.1f} s)"
            versus_plain = f"{median(ratios):.2f}x (each repeat: {', '.join(f'{r:.2f}' for r in ratios)})"
        lines.append(
            f"| `fit --config configs/{config}` | {wall:.1f} s (longest {max(r['wall_s'] for r in fit):.1f} s) | "
            f"{wall / base_wall:.2f}x | {training} | {versus_plain} | "
            f"{median([r['test_acc'] for r in fit]):.2%} (each: {accuracies}, lowest {lowest:.2%}) |"
        )
        if per_seed:
            lines += ["", f"`{config}` per seed: {per_seed}.", ""]
    lines += ["", "Raw figures:", "", "```json", json.dumps(results, indent=1, default=float), "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = REPO.parent / "shared" / "data"
    parser.add_argument("--data-dir", default=str(default_data if default_data.is_dir() else REPO / "data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=["cnn.yaml"])
    parser.add_argument("--bf16", action="store_true", help="also time each config with bf16 autocast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[None], help="run each config once per seed")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain loop (configs it cannot rebuild)")
    parser.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    args = parser.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    threads = len(os.sched_getaffinity(0))
    results: dict = {"default": [], **{c: {"fit": [], "plain": []} for c in args.configs}}
    for repeat in range(args.repeats):
        print(f"repeat {repeat + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
        results["default"].append(timed_fit(data_dir))
        for config in args.configs:
            path = str(REPO / "configs" / config)
            for seed in args.seeds:
                fit = timed_fit(data_dir, "--config", path, *seed_args(seed))
                results[config]["fit"].append({**fit, "seed": seed})
                print(f"  {config} seed {seed}: {fit['wall_s']:.1f} s, {fit['test_acc']:.2%}", file=sys.stderr)
            if not args.no_plain:
                results[config]["plain"].append(plain(data_dir, path, threads))
            if args.bf16:
                bf16 = timed_fit(data_dir, "--config", path, "--trainer.precision", "bf16-mixed")
                results[config].setdefault("bf16", []).append(bf16)
    command = " ".join(["python bench/cnn.py", *sys.argv[1:]])
    text = report(results, args.configs, threads, command)
    print(text)
    write_section(Path(args.out), text)


if __name__ == "__main__":
    main()
