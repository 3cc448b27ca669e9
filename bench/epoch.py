"""Benchmark: a training epoch of the default run against the tutorial's and a plain PyTorch loop's.

    python bench/epoch.py [--data-dir ../shared/data] [--repeats 3]

Contenders, each its own process, interleaved in every repeat (medians of all their epochs):

- the tutorial pipeline (``bench/tutorial.py``: ``ToTensor`` per sample, batch 100) on one thread;
- this project's data path and LitLogReg in a plain PyTorch loop (``bench/plain_loop.py``): the same batches,
  model, optimizer, schedule and thread;
- Lightning's loop alone: ``Trainer.fit`` of the same model and data with no logger, checkpoint, progress bar
  or callback (what Lightning itself costs per step);
- ``python train.py fit`` as the README types it (an epoch timed from its start to its validation).

Prints the ratios the speed section quotes and writes them as a section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))
from sections import write_section  # noqa: E402

EPOCHS = 12


def run_json(command: list[str], env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def tutorial(data_dir: str) -> list[float]:
    command = [sys.executable, str(BENCH / "tutorial.py"), "--data-dir", data_dir, "--epochs", "2", "--threads", "1"]
    return run_json(command)["epoch_s"]


def plain_loop(data_dir: str) -> list[float]:
    return run_json([sys.executable, str(BENCH / "plain_loop.py"), "--data-dir", data_dir])["epoch_s"]


def lightning_alone(data_dir: str) -> list[float]:
    return run_json([sys.executable, str(BENCH / "epoch.py"), "--lightning-alone", "--data-dir", data_dir])["epoch_s"]


def train_py(data_dir: str) -> list[float]:
    with tempfile.TemporaryDirectory() as root:
        out = Path(root) / "probe.jsonl"
        probe = ["--trainer.callbacks+=probe.EpochProbe", "--trainer.callbacks.out", str(out)]
        command = [sys.executable, "train.py", "fit", "--data.data_dir", data_dir, "--trainer.default_root_dir", root]
        env = {**os.environ, "PYTHONPATH": str(BENCH)}
        done = subprocess.run([*command, *probe, "--trainer.callbacks.evaluate", "false"], cwd=REPO, env=env)
        if done.returncode != 0:
            raise RuntimeError("train.py fit failed")
        return [json.loads(line)["train_s"] for line in out.read_text().splitlines()]


def run_lightning_alone(data_dir: str) -> None:
    """``Trainer.fit`` of the default model and data with nothing but Lightning's own loop; prints epoch times."""
    import warnings

    import lightning as L
    import torch

    from mnist_lightning import LitLogReg, MNISTDataModule

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    epoch_s: list[float] = []

    class Clock(L.Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            epoch_s.append(time.perf_counter() - self.started)

    trainer = L.Trainer(
        max_epochs=EPOCHS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[Clock()],
    )
    L.seed_everything(42, verbose=False)
    trainer.fit(LitLogReg(), MNISTDataModule(data_dir=data_dir, download=False))
    print(json.dumps({"epoch_s": epoch_s}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = REPO.parent / "shared" / "data"
    parser.add_argument("--data-dir", default=str(default_data if default_data.is_dir() else REPO / "data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    parser.add_argument("--lightning-alone", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    if args.lightning_alone:
        run_lightning_alone(data_dir)
        return

    contenders = {
        "tutorial pipeline, 1 thread": tutorial,
        "plain PyTorch loop (project's data and model)": plain_loop,
        "Lightning's loop alone (same model and data)": lightning_alone,
        "`python train.py fit`": train_py,
    }
    epochs: dict[str, list[float]] = {name: [] for name in contenders}
    for repeat in range(args.repeats):
        for name, contender in contenders.items():
            print(f"repeat {repeat + 1}: {name}", file=sys.stderr, flush=True)
            epochs[name] += contender(data_dir)
    medians = {name: statistics.median(values) for name, values in epochs.items()}
    tutorial_s, plain_s, lightning_s, fit_s = medians.values()
    text = "\n".join(
        [
            "## A training epoch: the default run, the tutorial and a plain loop",
            "",
            f"`python bench/epoch.py --repeats {args.repeats}`, {time.strftime('%Y-%m-%d')}: each contender its own "
            "process, interleaved in every repeat; medians of all their epochs (the tutorial: 2 per run, the others "
            f"{EPOCHS}).",
            "",
            "| contender | training epoch | tutorial epoch / this | this / plain loop |",
            "| --- | --- | --- | --- |",
            *(
                f"| {name} | {value:.3f} s | {tutorial_s / value:.1f}x | {value / plain_s:.2f}x |"
                for name, value in medians.items()
            ),
            "",
            f"- `train.py fit`'s epoch is **{tutorial_s / fit_s:.1f}x** faster than the tutorial's and "
            f"**{fit_s / plain_s:.2f}x** the plain loop's (issue 23's target: at most 1.45x); Lightning's loop alone "
            f"is {lightning_s / plain_s:.2f}x.",
        ]
    )
    print(text)
    write_section(Path(args.out), text)


if __name__ == "__main__":
    main()
