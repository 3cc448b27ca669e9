"""The models: plain torch layers (:mod:`.nets`), the LightningModule they share (:mod:`.classifier`), one file
per model class, and :data:`MODEL_CLASSES`, the one list of them.

Everything that must know the model classes derives from that list: the classes a checkpoint may name
(:data:`ALLOWLIST`), the CLI's ``--model`` hint, and the names ``mnist_lightning`` and this package export.
A new model is one class in one new file plus one entry in :data:`MODEL_CLASSES`.
"""

from mnist_lightning.checkpoint import Allowlist
from mnist_lightning.models.classifier import LitClassifier
from mnist_lightning.models.cnn import LitCNN
from mnist_lightning.models.ensemble import LitEnsemble
from mnist_lightning.models.logreg import LitLogReg
from mnist_lightning.models.mlp import LitMLP
from mnist_lightning.models.nets import cnn_layers
from mnist_lightning.models.schedulers import CosineToZeroLR
from mnist_lightning.specs import import_path, plain_spec

MODEL_CLASSES: tuple[type[LitClassifier], ...] = (LitLogReg, LitMLP, LitCNN)
"""Every model class, in the order the CLI lists them (the first is the default ``--model``)."""
MODEL_NAMES: tuple[str, ...] = tuple(cls.__name__ for cls in MODEL_CLASSES)
ALLOWLIST = Allowlist.of((*MODEL_CLASSES, LitEnsemble), schedulers=(CosineToZeroLR,))
"""What a checkpoint of this project may name: the model classes (and ensembles of them, which are assembled,
not fitted: no ``--model`` choice), torch's optimizers and schedulers, and ours."""
LitClassifier.checkpoint_allowlist = ALLOWLIST

__all__ = [
    "ALLOWLIST",
    "MODEL_CLASSES",
    "MODEL_NAMES",
    "CosineToZeroLR",
    "LitClassifier",
    "LitEnsemble",
    *MODEL_NAMES,
    "cnn_layers",  # documented for rebuilding an exported LitCNN state_dict in bare torch
    "import_path",
    "plain_spec",
]
