"""This project's data path and model in a plain PyTorch loop: what the math costs without Lightning.

    python bench/plain_loop.py [--config configs/cnn.yaml] [--threads N]

Same data module, model, optimizer (Adam), cosine schedule, epochs, thread count, label smoothing and bf16
autocast (``trainer.precision: bf16-mixed``) as ``train.py fit`` with the same config (the default run without
``--config``); a one-cycle schedule or other Adam betas cost the same per step as the cosine one.
Prints one JSON line: seconds and images per second of each training epoch, and the final test accuracy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.models import CosineToZeroLR, LitClassifier, LitCNN, LitLogReg, LitMLP

MODELS = {f"mnist_lightning.{cls.__name__}": cls for cls in (LitLogReg, LitMLP, LitCNN)}


def from_config(path: str | None) -> tuple[LitClassifier, int, int, bool]:
    """The model, batch size, epochs and bf16 autocast a config gives ``train.py fit`` (optimizer and schedule
    are not read)."""
    settings = yaml.safe_load(Path(path).read_text()) if path else {}
    model = settings.get("model", {})
    cls = MODELS[model.get("class_path", "mnist_lightning.LitLogReg")]
    init_args = {k: v for k, v in model.get("init_args", {}).items() if not isinstance(v, dict)}
    batch_size = settings.get("data", {}).get("batch_size", 1024)
    trainer = settings.get("trainer", {})
    return cls(**init_args), batch_size, trainer.get("max_epochs", 12), trainer.get("precision") == "bf16-mixed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--config", default=None, help="a configs/*.yaml (Adam, default schedule)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's max_epochs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)

    model, batch_size, epochs, bf16 = from_config(args.config)
    epochs = args.epochs or epochs
    data = MNISTDataModule(data_dir=args.data_dir, download=False, batch_size=batch_size)
    data.setup()
    loader = data.train_dataloader()
    model.set_input_statistics(data.input_mean, data.input_std)
    optimizer = torch.optim.Adam(model.parameters(), lr=model.hparams.lr)
    scheduler = CosineToZeroLR(optimizer, total_steps=epochs * len(loader))

    epoch_seconds = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        model.train()
        started = time.perf_counter()
        for images, labels in loader:
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
        predictions = torch.cat([model(chunk).argmax(1) for chunk in images.split(2000)])
        accuracy = (predictions == labels).float().mean().item()
    train_images = len(data.split("train")[1])
    print(
        json.dumps(
            {"epoch_s": epoch_seconds, "images_per_s": [train_images / s for s in epoch_seconds], "test_acc": accuracy}
        )
    )


if __name__ == "__main__":
    main()
