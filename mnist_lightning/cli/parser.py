"""The argument parser's wording: no prefix abbreviations, one-line errors with a hint of what to type."""

from __future__ import annotations

import re
import sys
from typing import Any, NoReturn

from lightning.pytorch.cli import ArgsType, LightningArgumentParser

from mnist_lightning.errors import one_line
from mnist_lightning.models import MODEL_NAMES

CLASS_OPTIONS = {
    "--model": ", ".join(MODEL_NAMES),
    "--model.optimizer": "a torch.optim class, e.g. SGD, Adam, AdamW, RMSprop",
    "--model.scheduler": "a torch.optim.lr_scheduler class, e.g. StepLR, CosineAnnealingLR, OneCycleLR, "
    "torch.optim.lr_scheduler.ReduceLROnPlateau, or null",
    "--trainer.logger": "TensorBoardLogger, CSVLogger, false",
}


class MNISTArgumentParser(LightningArgumentParser):
    """No prefix abbreviations (``--trainer.max_epoch`` is an error, not ``max_epochs``); one-line errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {with_hint(one_line(message))} (see `{prog} --help`)\n")
        sys.exit(2)


def with_hint(line: str) -> str:
    """What to type instead, for the options that take a class."""
    option, _, said = line.partition(": ")
    missing = re.match(r"missing required argument\(s\) (\w+)", said)
    if missing:
        return f"{line} (add {option}.{missing.group(1)} VALUE)"
    if "is not a class this option takes" in said and option in CLASS_OPTIONS:
        return f"{line}; accepted: {CLASS_OPTIONS[option]}"
    return line


def named_subcommand(args: ArgsType) -> str | None:
    """The first positional argument of a command line (the subcommand, if the line is valid), else ``None``.

    >>> named_subcommand(["--config", "fit.yaml", "test", "--ckpt_path", "best"])
    'test'
    >>> named_subcommand(["--help"]) is None
    True
    """
    if not isinstance(args, list | tuple):
        return None
    after_config = False
    for arg in map(str, args):
        if after_config:
            after_config = False
        elif arg in ("-c", "--config"):
            after_config = True
        elif not arg.startswith("-"):
            return arg
    return None
