"""``train.py``'s LightningCLI (:class:`.app.MNISTCLI`) and its parts; the command that runs it is
:mod:`mnist_lightning.commands.train`.

The names other modules import from the package itself are looked up when first used: the commands that never
build the CLI (``predict``, ``serve``, ...) end through :mod:`.exit` without paying for LightningCLI's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "FOLLOW_ROOT": "mnist_lightning.cli.run_folders",
    "MNISTCLI": "mnist_lightning.cli.app",
    "own_error": "mnist_lightning.cli.exit",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mnist_lightning.cli.app import MNISTCLI as MNISTCLI
    from mnist_lightning.cli.exit import own_error as own_error
    from mnist_lightning.cli.run_folders import FOLLOW_ROOT as FOLLOW_ROOT


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mnist_lightning.cli' has no attribute {name!r}")
