"""Where the time of a ``train.py`` command goes, phase by phase, after the libraries are imported.

    python bench/profile_startup.py [--cprofile] [SUBCOMMAND ARGS ...]    (default: fit --data.data_dir ../shared/data)

Imports the libraries first (timed: the import floor, in-process), then runs the CLI in this process and
prints wall-clock phases: our own imports, parsing and instantiation, data and trainer setup, training and
validation epochs, the end of the run. ``--cprofile`` adds cProfile's top functions by cumulative time (which
inflates Python-heavy code about 2x: use the phases for figures, the profile to see what is inside them).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()
import jsonargparse  # noqa: E402, F401
import lightning.pytorch as pl  # noqa: E402
import torchmetrics  # noqa: E402, F401
import torchvision  # noqa: E402, F401

IMPORTED = time.perf_counter()
from mnist_lightning.cli import MNISTCLI  # noqa: E402

OURS = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]


class Clock(pl.Callback):
    """Wall-clock marks at the Trainer's hooks (appended last, so every other callback's hook has run)."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []
        self.train_s = self.val_s = 0.0
        self._at = 0.0

    def _mark(self, name: str) -> None:
        self.marks.append((name, time.perf_counter()))

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._mark("callbacks' setup (config.yaml), data module setup")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark("model setup, optimizers, logger")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._at = time.perf_counter()

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.perf_counter()
        if self._at:
            self.train_s += now - self._at
        self._at = now

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.perf_counter()
        self.val_s += now - self._at
        self._at = now


class TimedCLI(MNISTCLI):
    """The project's CLI with a mark once the config is parsed and the classes are built."""

    def instantiate_trainer(self, **kwargs: object) -> pl.Trainer:
        self.clock.marks.append(("parse and instantiate (jsonargparse)", time.perf_counter()))
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.append(self.clock)
        return trainer


def main() -> None:
    args = sys.argv[1:]
    profile = "--cprofile" in args
    args = [arg for arg in args if arg != "--cprofile"]
    with tempfile.TemporaryDirectory() as root:
        if not args:
            args = ["fit", "--data.data_dir", str(REPO.parent / "shared" / "data"), "--trainer.default_root_dir", root]
        TimedCLI.clock = Clock()
        profiler = cProfile.Profile() if profile else None
        begun = time.perf_counter()
        if profiler:
            profiler.enable()
        TimedCLI(args=args)
        if profiler:
            profiler.disable()
        ended = time.perf_counter()
    clock = TimedCLI.clock
    print(f"{'libraries (the import floor, in-process)':55s} {IMPORTED - STARTED:6.3f} s")
    print(f"{'mnist_lightning.cli':55s} {OURS - IMPORTED:6.3f} s")
    previous = begun
    for name, at in clock.marks:
        print(f"{name:55s} {at - previous:6.3f} s")
        previous = at
    run_s = ended - previous
    print(f"{'training epochs':55s} {clock.train_s:6.3f} s")
    print(f"{'validation epochs (sanity check included)':55s} {clock.val_s:6.3f} s")
    print(f"{'rest of the run (checkpoints, pictures, end)':55s} {run_s - clock.train_s - clock.val_s:6.3f} s")
    print(f"{'after the libraries, in all':55s} {ended - IMPORTED:6.3f} s")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
