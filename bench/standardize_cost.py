"""What the model's own input standardization costs a training epoch of the default run.

    python bench/standardize_cost.py [--data-dir ../shared/data] [--repeats 5]

Three ways to train the same LitLogReg on the same batches (a plain loop, one thread, interleaved):
``prestandardized`` (the data standardized once up front: the layout before the model owned its
normalization), ``pass`` (the model standardizes each batch, one elementwise pass over it) and ``folded``
(what LitLogReg does: the standardization folded into the layer's weights). Prints median epoch times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mnist_lightning import LitLogReg, MNISTDataModule
from mnist_lightning.data.loading import EpochBatchSampler, TensorBatches

REPO = Path(__file__).resolve().parents[1]


def epoch_seconds(model: LitLogReg, loader, forward) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    started = time.perf_counter()
    for images, labels in loader:
        loss = F.cross_entropy(forward(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = MNISTDataModule(data_dir=args.data_dir, download=False)
    data.setup()
    model = LitLogReg()
    model.set_input_statistics(data.input_mean, data.input_std)
    pixels = data.train_dataloader()
    images, labels = data.split("train")
    sampler = EpochBatchSampler(len(labels), data.hparams.batch_size, shuffle=True, seed=data.hparams.seed)
    standardized = TensorBatches((images - data.input_mean) / data.input_std, labels)
    prestandardized = DataLoader(standardized, sampler=sampler, batch_size=None)

    def linear(x: torch.Tensor) -> torch.Tensor:
        return model.linear(x.flatten(1))

    ways = {
        "prestandardized": (prestandardized, linear),
        "pass": (pixels, lambda x: model.linear(model.standardize(x).flatten(1))),
        "folded": (pixels, model),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, (loader, forward) in ways.items():
            times[name].append(epoch_seconds(model, loader, forward))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["prestandardized"]
    for name, value in medians.items():
        print(f"{name:>16}: {value:.3f} s per epoch ({value / base - 1:+.1%})")
    print(json.dumps(times))


if __name__ == "__main__":
    main()
