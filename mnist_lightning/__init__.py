"""MNIST handwritten-digit classification with PyTorch Lightning: train, watch, load, predict.

The package's face, imported lazily so that ``import mnist_lightning`` costs nothing until a name is used::

    from mnist_lightning import LitCNN, LitLogReg, LitMLP, MNISTDataModule, load_model, predict_images

Every class in ``mnist_lightning.models.MODEL_CLASSES`` is exported here under its name, which is also the
class path checkpoints and configs name it by (``mnist_lightning.LitLogReg``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LitClassifier": "mnist_lightning.models",
    "LitEnsemble": "mnist_lightning.models",
    "MNISTDataModule": "mnist_lightning.data",
    "load_model": "mnist_lightning.inference",
    "predict_images": "mnist_lightning.inference",
    "predict_image": "mnist_lightning.inference",
    "preprocess": "mnist_lightning.preprocessing",
}
"""Names besides the model classes, and the module each lives in."""

if TYPE_CHECKING:  # for type checkers only: at run time the model classes come from MODEL_CLASSES
    from mnist_lightning.data import MNISTDataModule as MNISTDataModule
    from mnist_lightning.inference import load_model as load_model
    from mnist_lightning.inference import predict_image as predict_image
    from mnist_lightning.inference import predict_images as predict_images
    from mnist_lightning.models import LitClassifier as LitClassifier
    from mnist_lightning.models import LitCNN as LitCNN
    from mnist_lightning.models import LitEnsemble as LitEnsemble
    from mnist_lightning.models import LitLogReg as LitLogReg
    from mnist_lightning.models import LitMLP as LitMLP
    from mnist_lightning.preprocessing import preprocess as preprocess


def _model_names() -> tuple[str, ...]:
    return importlib.import_module("mnist_lightning.models").MODEL_NAMES


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name == "__all__":  # `from mnist_lightning import *`
        return sorted([*_EXPORTS, *_model_names()])
    # Class names only: `from mnist_lightning import fileio` asks for a submodule first, which must not
    # import torch on the way.
    if name[:1].isupper() and name in _model_names():
        return getattr(importlib.import_module("mnist_lightning.models"), name)
    raise AttributeError(f"module 'mnist_lightning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*_EXPORTS, *_model_names()])
