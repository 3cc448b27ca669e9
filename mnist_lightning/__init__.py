"""MNIST handwritten-digit classification with PyTorch Lightning: train, watch, load, predict.

The package's face, imported lazily so that ``import mnist_lightning`` costs nothing until a name is used::

    from mnist_lightning import LitCNN, LitLogReg, LitMLP, MNISTDataModule, load_model, predict_images
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LitClassifier": "mnist_lightning.models",
    "LitCNN": "mnist_lightning.models",
    "LitLogReg": "mnist_lightning.models",
    "LitMLP": "mnist_lightning.models",
    "MNISTDataModule": "mnist_lightning.data",
    "load_model": "mnist_lightning.inference",
    "predict_images": "mnist_lightning.inference",
    "predict_image": "mnist_lightning.inference",
    "preprocess": "mnist_lightning.preprocess",
}
__all__ = [
    "LitCNN",
    "LitClassifier",
    "LitLogReg",
    "LitMLP",
    "MNISTDataModule",
    "load_model",
    "predict_image",
    "predict_images",
    "preprocess",
]

if TYPE_CHECKING:
    from mnist_lightning.data import MNISTDataModule
    from mnist_lightning.inference import load_model, predict_image, predict_images
    from mnist_lightning.models import LitClassifier, LitCNN, LitLogReg, LitMLP
    from mnist_lightning.preprocess import preprocess


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mnist_lightning' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
