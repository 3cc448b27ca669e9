"""Probe: a LitCNN trained in a plain loop, with validation and test accuracy after every epoch.

    python bench/cnn_probe.py --epochs 8 --channels 32 64 --kernels 5 3 --hidden 256 --dropout 0.4 [--bn]
        [--convs-per-block 2] [--lr 0.002] [--batch 128] [--aug affine elastic] [--data-dir ../shared/data]

The same split, layers, Adam, cosine-to-zero schedule and training-batch augmentation (seeded per batch as
``train.py fit`` does) without Lightning's checkpoints and logs, so that short runs can rank settings before
a whole ``fit``. Seeing the test accuracy every epoch is for diagnosis only: configs are chosen and reported
by the best checkpoint by validation accuracy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.data.augment import augment
from mnist_lightning.models import CosineToZeroLR, LitCNN


def accuracy(model: LitCNN, data: MNISTDataModule, split: str) -> float:
    model.eval()
    images, labels = data.split(split)
    with torch.no_grad():
        chunks = zip(images.split(2000), labels.split(2000), strict=True)
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in chunks)
    return correct / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data-dir", default=str(default_data))
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--kernels", type=int, nargs="+", default=[5, 3])
    parser.add_argument("--convs-per-block", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.4)
    parser.add_argument("--bn", action="store_true", help="batch norm after each convolution")
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--aug", nargs="*", default=[], help="augmentation kinds of training batches")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = LitCNN(
        channels=tuple(args.channels),
        kernel_sizes=tuple(args.kernels),
        hidden_dim=args.hidden,
        dropout=args.dropout,
        batch_norm=args.bn,
        convs_per_block=args.convs_per_block,
        lr=args.lr,
    )
    data = MNISTDataModule(data_dir=args.data_dir, download=False, batch_size=args.batch, seed=args.seed)
    data.setup()
    loader = data.train_dataloader()
    model.set_input_statistics(data.input_mean, data.input_std)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = CosineToZeroLR(optimizer, total_steps=args.epochs * len(loader))
    print(vars(args), flush=True)
    step = 0
    for epoch in range(args.epochs):
        loader.sampler.set_epoch(epoch)
        model.train()
        started, correct, seen = time.perf_counter(), 0, 0
        for images, labels in loader:
            if args.aug:
                generator = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
                images = augment(images, generator, args.aug)
            step += 1
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
        seconds = time.perf_counter() - started
        print(
            f"epoch {epoch + 1}: {seconds:.1f} s, train acc (augmented, dropout on) {correct / seen:.4f}, "
            f"val {accuracy(model, data, 'val'):.4f}, test {accuracy(model, data, 'test'):.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
