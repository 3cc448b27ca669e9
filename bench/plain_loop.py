"""This project's data path and model in a plain PyTorch loop: what the math costs without Lightning.

Same data module, model, optimizer, schedule, epochs and thread count as the default ``train.py fit``.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.models import CosineToZeroLR, LitLogReg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)

    data = MNISTDataModule(data_dir=args.data_dir, download=False)
    data.setup()
    loader = data.train_dataloader()
    model = LitLogReg()
    model.set_input_statistics(data.input_mean, data.input_std)
    optimizer = torch.optim.Adam(model.parameters(), lr=model.hparams.lr)
    scheduler = CosineToZeroLR(optimizer, total_steps=args.epochs * len(loader))

    epoch_seconds = []
    for epoch in range(args.epochs):
        loader.sampler.set_epoch(epoch)
        started = time.perf_counter()
        for images, labels in loader:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        epoch_seconds.append(time.perf_counter() - started)
    with torch.no_grad():
        images, labels = data.split("test")
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    print(json.dumps({"epoch_s": epoch_seconds, "test_acc": accuracy}))


if __name__ == "__main__":
    main()
