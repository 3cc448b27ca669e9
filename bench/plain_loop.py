"""This project's data path and model in a plain PyTorch loop: what the math costs without Lightning.

    python bench/plain_loop.py [--config configs/cnn.yaml] [--threads N] [--epochs N] [--limit-batches N]

The same data module, model, optimizer and learning-rate schedule (stepped per batch, as ``train.py fit``
does), epochs, seed, label smoothing and bf16 autocast (``trainer.precision: bf16-mixed``) as ``train.py fit``
with the same config (the default run without ``--config``); augmentation is not reproduced (the configs
it is compared on have none). Prints one JSON line: each training epoch's
seconds and the final model's test accuracy. ``bench/parity.py`` runs it beside ``train.py fit``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.models import CosineToZeroLR, LitClassifier, LitCNN, LitLogReg, LitMLP

MODELS = {f"mnist_lightning.{cls.__name__}": cls for cls in (LitLogReg, LitMLP, LitCNN)}


def resolve(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build(settings: dict[str, Any], epochs: int, steps_per_epoch: int, model: LitClassifier) -> tuple[Any, Any]:
    """The optimizer and scheduler the config's ``model.init_args`` give ``train.py fit``."""
    init_args = settings.get("model", {}).get("init_args", {})
    spec = init_args.get("optimizer", {"class_path": "torch.optim.Adam"})
    optimizer = resolve(spec["class_path"])(model.parameters(), lr=model.hparams.lr, **spec.get("init_args", {}))
    spec = init_args.get("scheduler", {})
    scheduler_class = resolve(spec["class_path"]) if spec else CosineToZeroLR
    kwargs = dict(spec.get("init_args", {}))
    if "total_steps" in inspect.signature(scheduler_class).parameters:
        kwargs["total_steps"] = epochs * steps_per_epoch
    return optimizer, scheduler_class(optimizer, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--config", default=None, help="a configs/*.yaml (default: the default run)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's max_epochs")
    parser.add_argument("--limit-batches", type=int, default=None, help="training batches per epoch (smoke runs)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42, help="as train.py's seed_everything")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    settings = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    spec = settings.get("model", {})
    init_args = {k: v for k, v in spec.get("init_args", {}).items() if not isinstance(v, dict)}
    model = MODELS[spec.get("class_path", "mnist_lightning.LitLogReg")](**init_args)
    trainer = settings.get("trainer", {})
    epochs = args.epochs or trainer.get("max_epochs", 12)
    bf16 = trainer.get("precision") == "bf16-mixed"
    data_args = {k: v for k, v in settings.get("data", {}).items() if k in ("batch_size", "eval_batch_size")}
    data = MNISTDataModule(data_dir=args.data_dir, download=False, seed=args.seed, **data_args)
    data.setup()
    loader = data.train_dataloader()
    steps = min(len(loader), args.limit_batches or len(loader))
    model.set_input_statistics(data.input_mean, data.input_std)
    optimizer, scheduler = build(settings, epochs, steps, model)

    epoch_seconds = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        model.train()
        started = time.perf_counter()
        for step, (images, labels) in enumerate(loader):
            if step == steps:
                break
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(images), labels, label_smoothing=model.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        epoch_seconds.append(time.perf_counter() - started)
    model.eval()
    with torch.no_grad():
        images, labels = data.split("test")
        predictions = torch.cat([model(chunk).argmax(1) for chunk in images.split(1000)])
        accuracy = (predictions == labels).float().mean().item()
    print(json.dumps({"epoch_s": epoch_seconds, "test_acc": accuracy}))


if __name__ == "__main__":
    main()
