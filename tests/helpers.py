"""Helpers for tests: synthetic IDX files, ``train.py`` in-process, run folders, probe callbacks."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from mnist_lightning.commands import train
from mnist_lightning.commands.runner import run as run_command

REPO = Path(__file__).resolve().parents[1]
"""The project's root folder, whichever tier folder a test lives in."""

FAST = ("--data.val_size", "200", "--data.batch_size", "100", "--trainer.max_epochs", "2")
"""Two epochs of ten steps on the synthetic data."""
QUIET = ("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false")
"""What every in-process ``train.py`` run is told: its output is the test's to read."""

CliRunner = Callable[..., int]


def cli_runner(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> CliRunner:
    """``run(subcommand, *args)`` runs ``train.py`` in-process in ``cwd``; returns the exit code."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["train.py"])

    def run(subcommand: str, *args: str) -> int:
        return run_command(train.main, [subcommand, *QUIET, *args])

    return run


def idx_bytes(tensor: torch.Tensor) -> bytes:
    """Serialize a uint8 tensor in the IDX format torchvision reads."""
    header = bytes([0, 0, 0x08, tensor.dim()]) + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
    return header + tensor.to(torch.uint8).contiguous().numpy().tobytes()


def synthetic_split(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits that are easy to tell apart: class ``c`` lights a bright 6x6 block at a class-specific spot."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 10
    labels = labels[torch.randperm(count, generator=generator)]
    images = torch.randint(0, 60, (count, 28, 28), generator=generator, dtype=torch.uint8)
    for c in range(10):
        row, col = 2 + 8 * (c // 4), 2 + 6 * (c % 4)
        images[labels == c, row : row + 6, col : col + 6] = 255
    return images, labels


def write_dataset(root: Path, folder: str = "MNIST", train: int = 1200, test: int = 300) -> Path:
    """Write the four raw IDX files under ``root/folder/raw`` and return ``root``."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = synthetic_split(count, seed)
        (raw / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return root


class KillAtStep(L.Callback):
    """SIGKILLs its own process right after training step ``step``: a crash at a known point."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step and trainer.ckpt_path is None:  # a resumed run brings it back
            os.kill(os.getpid(), signal.SIGKILL)


class CountEvaluated(L.Callback):
    """Writes to ``out`` how many validation samples all ranks evaluated together in the last validation."""

    def __init__(self, out: str) -> None:
        self.out = out

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = trainer.strategy.reduce(pl_module.val_loss.weight.clone(), reduce_op="sum")
        if trainer.is_global_zero:
            Path(self.out).write_text(str(int(total)))


def run_folder(root: Path, version: int = 0) -> Path:
    return root / "lightning_logs" / f"version_{version}"


def best_checkpoint(root: Path, version: int = 0) -> Path:
    (best,) = (run_folder(root, version) / "checkpoints").glob("epoch*.ckpt")
    return best


class SignalAtStep(L.Callback):
    """Sends its own process ``signum`` right after training step ``step``: what a scheduler or Ctrl+C does."""

    def __init__(self, step: int, signum: int = int(signal.SIGTERM)) -> None:
        self.step = step
        self.signum = signum

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step and trainer.ckpt_path is None:  # a resumed run brings it back
            os.kill(os.getpid(), self.signum)


class RecordSplit(L.Callback):
    """Writes ``<out>/rank<R>.json``: digests of the split this rank built and of every image it trained on
    in the first epoch, so that a test can compare what the ranks of a distributed run saw."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.trained: list[str] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, *args: object) -> None:
        if trainer.current_epoch == 0 and trainer.ckpt_path is None:
            images = batch[0].cpu()
            self.trained += [hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in images]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != 0 or trainer.ckpt_path is not None:
            return
        split = {}
        for name in ("train", "val"):
            images, labels = trainer.datamodule.split(name)
            split[name] = hashlib.sha1(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
        record = {"split": split, "trained": self.trained}
        (Path(self.out) / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def quiet_trainer(root: Path, **overrides: Any) -> L.Trainer:
    """A Trainer for tests: no logger, progress bar or model summary unless asked, on the CPU, in ``root``."""
    settings: dict[str, Any] = {
        "default_root_dir": root,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "accelerator": "cpu",
    }
    return L.Trainer(**{**settings, **overrides})


def nudge_weights(folder: Path, shift: int) -> None:
    """Add ``shift / 1000`` to the first weight tensor of every checkpoint under ``folder``: copies of one run
    that are different models (an ensemble refuses the same model twice)."""
    for path in folder.rglob("*.ckpt"):
        checkpoint = torch.load(path, weights_only=True)
        state = checkpoint["state_dict"]
        first = next(name for name, value in state.items() if value.is_floating_point() and value.dim() > 0)
        state[first] += shift / 1000
        torch.save(checkpoint, path)


def handwriting_fonts() -> dict[str, Path]:
    """Every hand's font file of the handwriting suite. CI installs the fonts (.ci/run), so there their absence
    fails the test; elsewhere it skips it."""
    import pytest

    from mnist_lightning.evaluate.fonts import FontsMissingError, font_paths

    try:
        return font_paths()
    except FontsMissingError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the handwriting suite's tests: {err}")
        pytest.skip(str(err))


def untrained_checkpoint(path: Path) -> Path:
    """A valid checkpoint of an untrained LitLogReg with MNIST's input statistics, what ``load_model`` reads."""
    from mnist_lightning import LitLogReg

    model = LitLogReg()
    model.set_input_statistics(0.1307, 0.3081)
    trainer = quiet_trainer(path.parent, enable_checkpointing=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path
