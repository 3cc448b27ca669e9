"""The GPU check's fits: the default run, configs/cnn.yaml and configs/cnn_fast.yaml on the GPU, timed.

    bash bench/gpu.sh [--data-dir DIR] [--results DIR]     (the GPU-marked tests first, then this script)
    python bench/gpu.py [--data-dir DIR] [--results DIR] [--smoke] [--tests-summary TEXT]

Each fit is ``python train.py fit [--config C] --trainer.accelerator gpu --trainer.precision bf16-mixed``, its own
process (start-up included); the data module keeps the splits on the device (``num_workers`` 0, the default) and
every batch is sliced there. The CNN configs run twice: as they are, and with their network compiled
(``torch.compile`` through :class:`CompileNet`). Recorded: the whole process, the training (the sum of the epochs,
validation excluded: ``probe.EpochProbe``) and the test accuracy of the best checkpoint by validation. Writes
``bench/results/gpu.json`` (``python bench/report.py`` puts it in bench/RESULTS.md). Needs no internet: the MNIST
files must be there.

``--smoke`` (what gpu.sh runs without a GPU): a short CPU run of the same commands (one epoch of a few batches,
a small validation split, bf16 autocast on the CPU, no compilation) to show the script works; it writes no GPU
figures: nothing unless ``--results`` is given, and then as ``gpu_smoke.json``, under a title of its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from harness import PROBE_ENV, REPO, accuracy_of_best, default_data_dir, fit_command, probe_args, write_result

BUDGET_S = 200.0
"""Seconds the fits may take together: gpu.sh runs the GPU tests first and stays under 5 minutes."""
GPU_TITLE = "GPU check: the default run and the CNN configs on a GPU"
SMOKE_TITLE = "GPU check: CPU smoke run (no GPU on this machine; these are not GPU figures)"
SMOKE_ARGS = (
    *("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "1"),
    *("--data.val_size", "1000"),
)
"""One epoch of a few batches; a validation split of 1,000 images, which the temperature is fitted on at the end."""


class CompileNet(L.Callback):
    """Compiles the model's network in place (``nn.Module.compile``): its state_dict keys stay the same, so the
    checkpoints are those of an uncompiled run."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.net.compile()


@dataclass
class Fit:
    """One fit of the check: what ran and what it gave."""

    name: str
    config: str | None
    compiled: bool
    wall_s: float | None = None
    train_s: float | None = None
    epochs: int = 0
    test_acc: float | None = None
    note: str = ""


def planned(smoke: bool) -> list[Fit]:
    """The default run, then each CNN config as it is and compiled (not in a smoke run); missing configs noted."""
    fits = [Fit("default run", None, False)]
    for config in ("configs/cnn.yaml", "configs/cnn_fast.yaml"):
        name = Path(config).name
        if not (REPO / config).is_file():
            fits.append(Fit(name, config, False, note=f"{config} is missing: not run"))
            continue
        fits.append(Fit(name, config, False))
        if not smoke:
            fits.append(Fit(name, config, True))
    return fits


def run_fit(fit: Fit, data_dir: str, smoke: bool, deadline: float) -> None:
    """Run ``fit`` as its own process and fill in its figures, or say in ``fit.note`` why there are none."""
    left = deadline - time.monotonic()
    if left < 10:
        fit.note = "not run: the check's time budget is spent"
        return
    device = ("--trainer.accelerator", "cpu" if smoke else "gpu", "--trainer.precision", "bf16-mixed")
    with tempfile.TemporaryDirectory() as root:
        out = Path(root) / "probe.jsonl"
        extra = [*(("--config", fit.config) if fit.config else ()), *device, "--data.download", "false"]
        extra += [*probe_args(out, evaluate=False), *(SMOKE_ARGS if smoke else ())]
        extra += ["--trainer.callbacks+=gpu.CompileNet"] if fit.compiled else []
        started = time.perf_counter()
        try:
            done = subprocess.run(
                fit_command(data_dir, root, *extra),
                cwd=REPO,
                env=PROBE_ENV,
                capture_output=True,
                text=True,
                timeout=left,
            )
        except subprocess.TimeoutExpired:
            fit.note = f"stopped after {left:.0f} s: the check's time budget is spent"
            return
        fit.wall_s = time.perf_counter() - started
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
            fit.note = f"failed: {lines[-1][:300]}"
            return
        epochs = [json.loads(line)["train_s"] for line in out.read_text().splitlines()]
        fit.train_s, fit.epochs = sum(epochs), len(epochs)
        fit.test_acc = accuracy_of_best(root, data_dir)


def write(fits: list[Fit], smoke: bool, device: str, tests_summary: str, results: Path) -> Path:
    """``gpu.json`` (``gpu_smoke.json`` for a smoke run): one row a fit."""
    how = (
        f"One epoch of {SMOKE_ARGS[3]} batches on the CPU, a validation split of {SMOKE_ARGS[-1]} images, bf16 "
        "autocast, nothing compiled."
        if smoke
        else "Full runs, `--trainer.accelerator gpu --trainer.precision bf16-mixed`, the data on the device."
    )
    return write_result(
        results,
        "gpu_smoke" if smoke else "gpu",
        SMOKE_TITLE if smoke else GPU_TITLE,
        [
            ["config", "", ""],
            ["torch.compile", "", ""],
            ["epochs", "d", ""],
            ["training", ".2f", " s"],
            ["whole process", ".2f", " s"],
            ["test accuracy", ".2%", ""],
            ["note", "", ""],
        ],
        [
            [f.name, "yes" if f.compiled else "no", f.epochs or None, f.train_s, f.wall_s, f.test_acc, f.note]
            for f in fits
        ],
        notes=[
            f"On {device}. {how} Each fit is its own `train.py fit` process; training is the sum of its epochs "
            "(validation excluded); the test accuracy is that of the best checkpoint by validation. Targets on a "
            "GPU: cnn.yaml's training at most 3 s, cnn_fast.yaml's whole process at most 30 s.",
            f"GPU-marked tests (`pytest -m gpu`): {tests_summary}.",
        ],
        raw={"device": device, "tests": tests_summary},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--results", type=Path, default=None, help="default: bench/results on a GPU, none in a smoke")
    parser.add_argument("--smoke", action="store_true", help="a short CPU run (what gpu.sh runs without a GPU)")
    parser.add_argument("--tests-summary", default="not run", help="pytest's summary line, from gpu.sh")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds all the fits may take")
    args = parser.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        sys.exit(f"torch {torch.__version__} sees no CUDA device: run bench/gpu.sh, which falls back to --smoke")
    data_dir = str(Path(args.data_dir).resolve())
    if not (Path(data_dir) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        sys.exit(f"the MNIST files are not in {data_dir}/MNIST/raw (the check downloads nothing): pass --data-dir")
    device = "the CPU (smoke run)" if args.smoke else torch.cuda.get_device_name(0)
    deadline = time.monotonic() + args.budget
    fits = planned(args.smoke)
    for fit in fits:
        if not fit.note:
            print(f"fit: {fit.name}{' (compiled)' if fit.compiled else ''} ...", file=sys.stderr, flush=True)
            run_fit(fit, data_dir, args.smoke, deadline)
    for fit in fits:
        print(fit)
    results = args.results or (None if args.smoke else REPO / "bench" / "results")
    if results is not None:
        print(f"written to {write(fits, args.smoke, device, args.tests_summary, results)}", file=sys.stderr)


if __name__ == "__main__":
    main()
