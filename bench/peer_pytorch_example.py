"""The peer: the recipe of PyTorch's canonical MNIST example (pytorch/examples, mnist/main.py), plain PyTorch.

    python bench/peer_pytorch_example.py [--data-dir ../shared/data] [--epochs 14] [--threads N]

Written from the example's description, on the CPU: two 3x3 convolutions (32 and 64 channels) with ReLU, 2x2
max-pooling, dropout 0.25, a hidden layer of 128 with ReLU, dropout 0.5, log-softmax and the NLL loss;
Adadelta at lr 1.0, StepLR with gamma 0.7 every epoch; batches of 64 (tests in batches of 1,000) from
torchvision's MNIST with ``Normalize((0.1307,), (0.3081,))``, seed 1; all 60,000 training images, the 10,000
test images after every epoch. Prints one JSON line per epoch: when the epoch's training ended (epoch seconds),
how long its test took, and the test accuracy. ``bench/peer.py`` times it against this project's CNN configs.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(self.dropout2(x)), dim=1)


def accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += int((model(images).argmax(1) == labels).sum())
    return correct / len(loader.dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data", help="holds MNIST/raw; nothing is downloaded")
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--limit-batches", type=int, default=None, help="training batches per epoch (smoke runs)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = datasets.MNIST(args.data_dir, train=True, download=False, transform=transform)
    test = datasets.MNIST(args.data_dir, train=False, download=False, transform=transform)
    train_loader = DataLoader(train, batch_size=64, shuffle=True)
    test_loader = DataLoader(test, batch_size=1000)

    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch, (images, labels) in enumerate(train_loader):
            if batch == args.limit_batches:
                break
            optimizer.zero_grad()
            loss = F.nll_loss(model(images), labels)
            loss.backward()
            optimizer.step()
        trained = time.time()
        test_acc = accuracy(model, test_loader)
        record = {"epoch": epoch, "wall": trained, "eval_s": time.time() - trained, "test_acc": test_acc}
        print(json.dumps(record), flush=True)
        scheduler.step()


if __name__ == "__main__":
    main()
