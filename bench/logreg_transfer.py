"""Benchmark: what LitLogReg's training options do to its reading of handwriting nobody here drew.

    python bench/logreg_transfer.py --data-dir ../shared/data [--variant NAME ...] [--threads 1]

Each variant trains the default model in a plain loop that reproduces ``train.py fit`` (the same split, batches,
Adam, cosine schedule to 0 per step, 12 epochs, the best epoch by validation accuracy: the ``default`` variant
gives the default checkpoint's figures exactly) with one training option changed: augmentation kinds and
strengths, weight decay, label smoothing, epochs, learning rate, templates kept smooth, or LitLogReg's
``deskew``. It reads the TUNING fonts of ``evaluate.handwriting`` only, drawn and preprocessed once (the
preprocessing does not depend on the model), so a variant costs one fit, not one benchmark. Prints one JSON
line per variant: validation and test accuracy and the handwriting accuracy, overall and on the worst
rendering, at the best epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.nn.functional as F

from mnist_lightning import LitLogReg
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.data import augment as aug
from mnist_lightning.evaluate import handwriting
from mnist_lightning.images import ImageError
from mnist_lightning.models import CosineToZeroLR
from mnist_lightning.models.nets import fold_standardization
from mnist_lightning.preprocessing import preprocess

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def rotate(images: torch.Tensor, generator: torch.Generator, degrees: float) -> torch.Tensor:
    """Rotation alone: the preprocessing already centres and sizes every digit."""
    return aug.random_affine(images, generator, degrees, 0.0, (1.0, 1.0))


def chain(*steps: Augment) -> Augment:
    def run(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for step in steps:
            images = step(images, generator)
        return images.clamp(0, 1)

    return run


@dataclass(frozen=True)
class Variant:
    augment: Augment | None = None
    share: float = 1.0
    """Share of each batch augmented; the rest stays as MNIST drew it."""
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    epochs: int = 12
    lr: float = 0.02
    smooth: float = 0.0
    """Sigma (pixels) of a Gaussian the templates are seen through: ``W = blur(V)``, still one linear layer."""
    deskew: bool = False
    """LitLogReg's ``deskew`` option: every image, in training and reading, sheared upright first."""


THICKNESS = partial(aug.random_thickness, thinner=0.5, thicker=1.0)
BLUR = partial(aug.random_blur, sigma=1.0)
VARIANTS: dict[str, Variant] = {
    "default": Variant(),
    "thickness": Variant(THICKNESS),
    "blur": Variant(BLUR),
    "rotate10": Variant(partial(rotate, degrees=10.0)),
    "rotate10+thickness+blur": Variant(chain(partial(rotate, degrees=10.0), THICKNESS, BLUR)),
    "affine": Variant(aug.random_affine),
    "rotate5-half": Variant(partial(rotate, degrees=5.0), share=0.5),
    "thicker-half": Variant(partial(aug.random_thickness, thinner=0.0, thicker=0.5), share=0.5),
    "contrast": Variant(aug.random_contrast),
    "wd1e-4": Variant(weight_decay=1e-4),
    "wd1e-3": Variant(weight_decay=1e-3),
    "wd1e-2": Variant(weight_decay=1e-2),
    "smoothing0.1": Variant(label_smoothing=0.1),
    "epochs6": Variant(epochs=6),
    "epochs20": Variant(epochs=20),
    "lr0.005": Variant(lr=0.005),
    "lr0.05": Variant(lr=0.05),
    "smooth0.75": Variant(smooth=0.75),
    "smooth1.5": Variant(smooth=1.5),
    "deskew": Variant(deskew=True),
    "deskew+wd1e-3": Variant(weight_decay=1e-3, deskew=True),
    "deskew+rotate10": Variant(partial(rotate, degrees=10.0), deskew=True),
    "deskew+thicker-half": Variant(partial(aug.random_thickness, thinner=0.0, thicker=0.5), share=0.5, deskew=True),
}


class SmoothLogReg(LitLogReg):
    """LitLogReg whose weights are seen through a Gaussian blur: smooth templates, the same linear map."""

    sigma = 1.0
    """Set on the instance: an ``__init__`` argument would become a hyperparameter LitLogReg does not take."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        templates = self.linear.weight.view(-1, 1, 28, 28)
        weight = aug.gaussian_blur(templates, self.sigma).view(templates.shape[0], -1)
        weight, bias = fold_standardization(weight, self.linear.bias, self.input_mean, self.input_std)
        return F.linear(images.reshape(images.shape[0], -1), weight, bias)


def tuning_digits() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The tuning fonts' benchmark images preprocessed as ``predict_images`` does (a refused one: all zeros, a
    label of -1 so that it counts as wrong), their labels and renderings."""
    samples = handwriting.render_benchmark(handwriting.font_paths(handwriting.TUNING))
    digits, labels = [], []
    for sample in samples:
        try:
            digits.append(preprocess(sample.image))
            labels.append(sample.label)
        except ImageError:
            digits.append(torch.zeros(1, 28, 28))
            labels.append(-1)
    return torch.stack(digits), torch.tensor(labels), [s.rendering for s in samples]


def training_batch(variant: Variant, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The batch with the variant's augmentation applied to its ``share`` of the images, chosen at random."""
    if variant.augment is None:
        return images
    changed = variant.augment(images, generator)
    keep = torch.rand(len(images), generator=generator) >= variant.share
    return torch.where(keep.view(-1, 1, 1, 1), images, changed)


def accuracy(model: LitLogReg, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Whether each image is read right."""
    return model(images).argmax(1) == labels


def fit(variant: Variant, data: MNISTDataModule, digits: tuple[torch.Tensor, torch.Tensor, list[str]]) -> dict:
    """Train as ``train.py fit`` does, with the variant's option; the figures of the best epoch by val/acc."""
    torch.manual_seed(42)
    model = SmoothLogReg() if variant.smooth else LitLogReg(deskew=variant.deskew)
    model.sigma = variant.smooth
    model.set_input_statistics(data.input_mean, data.input_std)
    loader = data.train_dataloader()
    optimizer = torch.optim.Adam(model.parameters(), lr=variant.lr, weight_decay=variant.weight_decay)
    scheduler = CosineToZeroLR(optimizer, total_steps=variant.epochs * len(loader))
    hw_images, hw_labels, renderings = digits
    best: dict = {"val_acc": -1.0}
    step, started = 0, time.perf_counter()
    for epoch in range(variant.epochs):
        loader.sampler.set_epoch(epoch)
        model.train()
        for images, labels in loader:
            generator = torch.Generator().manual_seed(data.hparams.seed * 1_000_003 + step)
            images = training_batch(variant, images, generator)
            loss = F.cross_entropy(model(images), labels, label_smoothing=variant.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
        model.eval()
        with torch.no_grad():
            val_acc = accuracy(model, *data.split("val")).float().mean().item()
            if val_acc <= best["val_acc"]:
                continue
            right = accuracy(model, hw_images, hw_labels)
            per_rendering = {
                r: right[[k for k, s in enumerate(renderings) if s == r]].float().mean().item()
                for r in handwriting.RENDERINGS
            }
            worst = min(per_rendering, key=per_rendering.__getitem__)
            best = {
                "epoch": epoch,
                "val_acc": round(val_acc, 4),
                "test_acc": round(accuracy(model, *data.split("test")).float().mean().item(), 4),
                "tuning_acc": round(right.float().mean().item(), 4),
                "worst_rendering": [worst, round(per_rendering[worst], 4)],
            }
    return {**best, "fit_s": round(time.perf_counter() - started, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="default: every variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (train.py gives LitLogReg one)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = MNISTDataModule(data_dir=args.data_dir, download=False)
    data.setup()
    digits = tuning_digits()
    for name in args.variant or list(VARIANTS):
        variant = VARIANTS[name]
        settings = {k: v for k, v in asdict(variant).items() if k != "augment"}
        print(json.dumps({"variant": name, **fit(variant, data, digits), **settings}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
