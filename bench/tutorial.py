"""The classic tutorial pipeline, the baseline this project is measured against.

torchvision's MNIST with ``ToTensor`` per sample, a DataLoader of batch 100, ``nn.Linear(784, 10)``,
cross-entropy and plain SGD, trained on all 60k training images. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    train = datasets.MNIST(args.data_dir, train=True, transform=transforms.ToTensor(), download=False)
    test = datasets.MNIST(args.data_dir, train=False, transform=transforms.ToTensor(), download=False)
    train_loader = DataLoader(train, batch_size=100, shuffle=True)
    test_loader = DataLoader(test, batch_size=100, shuffle=False)
    model = nn.Linear(28 * 28, 10)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

    epoch_seconds, test_accuracy = [], []
    for _ in range(args.epochs):
        started = time.perf_counter()
        for images, labels in train_loader:
            loss = criterion(model(images.reshape(-1, 28 * 28)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epoch_seconds.append(time.perf_counter() - started)
        with torch.no_grad():
            correct = sum((model(x.reshape(-1, 28 * 28)).argmax(1) == y).sum().item() for x, y in test_loader)
        test_accuracy.append(correct / len(test))
    print(json.dumps({"epoch_s": epoch_seconds, "test_acc": test_accuracy}))


if __name__ == "__main__":
    main()
