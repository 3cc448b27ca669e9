"""The resume plan: what ``--ckpt_path`` brings to a run, decided once from the command line and the vetted
checkpoint, and passed along as one value.

A checkpoint is data, not code (docs/safety.md): it brings its model (a class of the project's allowlist with
plain hyperparameters), its data settings and, for ``fit``, the plain trainer values its run trained with, all as
parser defaults that every option and config file the user gives outranks. Nothing else found on disk is read:
the run folder's ``config.yaml`` (callbacks, loggers, extra data folders) counts only when the user names it
with ``--config``, as any file named on the command line. A data folder the checkpoint names is used only inside
the current folder, and a value it brings that is refused is blamed on it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from mnist_lightning.checkpoint import VettedModel, find_checkpoint, read_checkpoint, vet_data, vet_model
from mnist_lightning.checkpoint.vetting import plain_value
from mnist_lightning.cli.run_folders import launched_as_rank_zero, runs_dir
from mnist_lightning.data.augment import AUGMENTATIONS
from mnist_lightning.errors import CheckpointError, ConfigError
from mnist_lightning.models import ALLOWLIST
from mnist_lightning.runlock import lock_run
from mnist_lightning.specs import as_yaml

DATA_KEYS = ("data_dir", "dataset", "val_size", "seed", "normalize", "batch_size", "eval_batch_size", "num_workers")
"""Data settings a checkpoint brings: ``validate``/``test`` see the split training saw, ``fit`` batches alike."""
TRAINER_KEYS = ("max_epochs", "max_steps", "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm")
"""Trainer settings ``fit`` resumes with (and ``precision``): numbers and fixed words, never a class or a function."""
SAME_RESULT = {"data.data_dir", "data.num_workers", "data.eval_batch_size"}
"""Settings a resume may change without changing what it trains."""


class RunSettings(Callback):
    """Keeps in every checkpoint the plain trainer values its run trains with, so that ``fit --ckpt_path last``
    continues the run as it was started without reading the run's ``config.yaml``."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            values = {key: getattr(trainer, key) for key in TRAINER_KEYS}
            # plain values only: a weights-only load refuses the Enum the Trainer keeps gradient_clip_algorithm as
            self.settings = {key: v.value if isinstance(v, Enum) else v for key, v in values.items()}
            self.settings["precision"] = str(trainer.precision)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.settings)


@dataclass(frozen=True)
class ResumePlan:
    """One ``--ckpt_path``, read and vetted: the checkpoint, its model and the option values it brings."""

    path: Path
    checkpoint: dict[str, Any] = field(repr=False)  # handed to the Trainer, which then does not read it again
    model: VettedModel
    values: dict[str, Any]  # dotted option (``model.lr`` is the model's ``init_args.lr``) -> the checkpoint's value
    run: Path | None = None  # the run folder ``fit --ckpt_path best|last`` continues
    config_named: bool = False  # whether the command line names a --config (then the run's config.yaml is rewritten)

    def parser_defaults(self) -> dict[str, Any]:
        """The checkpoint's values as parser defaults: every option and config file the user gives wins."""
        init_args = {key[6:]: value for key, value in self.values.items() if key.startswith("model.")}
        defaults: dict[str, Any] = {"model": {"class_path": self.model.class_path, "init_args": init_args}}
        defaults.update({key: value for key, value in self.values.items() if not key.startswith("model.")})
        return defaults

    def kept(self, config: Namespace) -> dict[str, Any]:
        """The values of the checkpoint that the user did not override."""
        return {key: value for key, value in self.values.items() if final_value(config, key) == value}

    def fill_nulls(self, config: Namespace) -> None:
        """A ``null`` in a config file (the run's own ``config.yaml`` records every default so) means "the default",
        which the checkpoint's run already resolved (``model.lr`` null: the model's own rate, kept as a number):
        the checkpoint's value stands, rather than a default that may differ, and is no change to report."""
        for key, value in self.values.items():
            if value is None or isinstance(value, dict) or final_value(config, key) is not None:
                continue
            section, _, name = key.partition(".")
            config[f"{section}.init_args.{name}" if section == "model" else key] = value

    def check(self, config: Namespace, given: Namespace, subcommand: str) -> None:
        """Refuse what a resume cannot do with the parsed ``config`` (``given``: the options without the plan)."""
        chosen = config.model.class_path.rpartition(".")[2]
        if chosen != self.model.cls.__name__:
            raise ConfigError(
                f"--model {chosen} does not match the checkpoint, which holds a {self.model.cls.__name__}: leave "
                "--model out (the checkpoint brings its model) or pass another checkpoint"
            )
        _check_init_from(final_value(config, "model.init_from"), self.model.init_args.get("init_from"), self.path)
        _check_data_dir(config.data.get("data_dir"), given.data.get("data_dir"), self.path)
        if subcommand == "fit":
            self._check_changes(config)

    def _check_changes(self, config: Namespace) -> None:
        """Say which settings differ from the run's; refuse to stretch a schedule that already ended."""
        changed = [
            f"{key} {value} -> {final_value(config, key)}"
            for key, value in self.values.items()
            if key not in SAME_RESULT and final_value(config, key) != value
        ]
        if not changed:
            return
        schedules = self.checkpoint.get("lr_schedulers") or []
        length_changed = any(c.startswith(("trainer.max_epochs", "trainer.max_steps")) for c in changed)
        if length_changed and any(isinstance(s, dict) and s.get("total_steps") for s in schedules):
            raise ConfigError(
                f"{', '.join(changed)}: the run's learning-rate schedule was planned for its original length and "
                "reaches 0 at its end; resume without changing the run's length, or train a new run "
                "(fit without --ckpt_path) with the length you want"
            )
        rank_zero_info(
            f"WARNING: resuming {self.run or self.path} with settings other than the run's ({'; '.join(changed)}): "
            "the result will differ from an uninterrupted run"
        )


def plan_resume(subcommand: str, given: Namespace) -> ResumePlan:
    """Read and vet the checkpoint ``--ckpt_path`` names (``best``/``last``: found in the runs folder, and for
    ``fit`` the run folder locked) once; ``given`` is the parsed command line."""
    if given.get("weights_only") is False:
        raise ConfigError(
            "--weights_only false is refused: it lets a checkpoint run arbitrary code when loaded. "
            "Checkpoints written by this project load with weights_only (the default here)."
        )
    ckpt_path, run = str(given.ckpt_path), None
    if ckpt_path in ("best", "last"):
        path, checkpoint, notes = find_checkpoint(
            ckpt_path, runs_dir(given), run=_named_run(given, ckpt_path, subcommand)
        )
        for note in notes:
            rank_zero_info(f"WARNING: {note}")
        rank_zero_info(f"--ckpt_path {ckpt_path}: {path}")
        if subcommand == "fit":
            run = path.parent.parent
            if launched_as_rank_zero():  # the other ranks are the same run, not a second writer
                lock_run(run)  # refuse a second writer before anything is read or written
            if not given.get("config"):
                rank_zero_info(
                    f"resuming {run} with its checkpoint's model, data and trainer settings; to keep its callbacks "
                    f"and loggers too: fit --config {run / 'config.yaml'} --ckpt_path {ckpt_path} (options after it)"
                )
    else:
        path = Path(ckpt_path)
        checkpoint = read_checkpoint(path)
    _forget_other_folders(checkpoint, path, run)
    model = vet_model(checkpoint.get("hyper_parameters"), ALLOWLIST)
    values = {f"model.{key}": value for key, value in model.init_args.items()}
    values.update({f"data.{key}": value for key, value in _data_values(checkpoint).items()})
    if subcommand == "fit":
        values.update({f"trainer.{key}": value for key, value in _trainer_values(checkpoint).items()})
    return ResumePlan(path, checkpoint, model, values, run, config_named=bool(given.get("config")))


def _named_run(given: Namespace, which: str, subcommand: str) -> Path | None:
    """The run folder whose ``config.yaml`` the command line names with ``--config`` (``best``/``last`` are then
    that run's, not the newest run's), or ``None`` when it names none; refused when it names two runs, or, for
    ``fit`` (which goes on logging in the run), a run outside the runs folder this run would log to."""
    configs = [Path(str(path)) for path in given.get("config") or []]
    runs = {config.parent.resolve(): config.parent for config in configs if (config.parent / "checkpoints").is_dir()}
    if not runs:
        return None
    if len(runs) > 1:
        raise ConfigError(
            f"--ckpt_path {which} with --config files of {len(runs)} runs ({', '.join(sorted(map(str, runs)))}): "
            f"it is not clear whose {which} checkpoint to resume; pass --ckpt_path PATH/TO/FILE.ckpt"
        )
    ((resolved, run),) = runs.items()
    logs = runs_dir(given).resolve()
    if subcommand == "fit" and resolved.parent != logs:
        raise ConfigError(
            f"--ckpt_path {which} with --config of the run {resolved}: this run would log to {logs}, not beside it; "
            f"run from the folder that holds that run, or pass --ckpt_path with a .ckpt file of {run / 'checkpoints'}"
        )
    # named as the runs folder names its runs: a ModelCheckpoint restores its best and top-k files only when its
    # folder is written as the one in the checkpoint
    return runs_dir(given) / resolved.name if subcommand == "fit" else run


CHECKPOINT_PATHS = ("dirpath", "best_k_models", "kth_best_model_path", "kth_value", "last_model_path")
"""What a ModelCheckpoint's saved state says about its folder; left out, the callback keeps its own."""


def _forget_other_folders(checkpoint: dict[str, Any], path: Path, run: Path | None) -> None:
    """The checkpoint callbacks' files and scores are kept only when ``fit`` continues the run in the folder they
    describe. Elsewhere they name another run's files (a copied checkpoint claims any path it likes): the new
    run would report that run's best model as its own, and Lightning warns that the folder changed. The new
    run then tracks its own best from its first validation."""
    for state in (checkpoint.get("callbacks") or {}).values():
        if not isinstance(state, dict) or "best_model_path" not in state:
            continue
        claimed = state.get("dirpath")
        if run is not None and isinstance(claimed, str) and Path(claimed).resolve() == path.parent.resolve():
            continue
        for key in CHECKPOINT_PATHS:
            state.pop(key, None)
        state.update(best_model_path="", best_model_score=None, current_score=None)


def _data_values(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's data settings, plain values only (``augment``: a flag or names of known kinds)."""
    hparams = checkpoint.get("datamodule_hyper_parameters")
    values = vet_data(hparams, DATA_KEYS)
    augment = hparams.get("augment") if isinstance(hparams, dict) else None
    if isinstance(augment, bool) or (isinstance(augment, list) and all(kind in AUGMENTATIONS for kind in augment)):
        values["augment"] = augment
    elif augment is not None:
        raise CheckpointError(f"Refusing the checkpoint: data.augment is {str(augment)[:80]!r}, expected a flag")
    return values


def _trainer_values(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The trainer values :class:`RunSettings` kept (none in checkpoints written without it)."""
    saved = (checkpoint.get("callbacks") or {}).get(RunSettings.__qualname__)
    if not isinstance(saved, dict):
        return {}
    words = ("precision", "gradient_clip_algorithm")
    return {
        key: plain_value(saved[key], f"trainer.{key}", strings=key in words)
        for key in (*TRAINER_KEYS, "precision")
        if key in saved
    }


def final_value(config: Namespace, key: str) -> Any:
    """The parsed value of a dotted option (``model.lr`` is ``model.init_args.lr``) as a checkpoint stores it
    (tuples as lists)."""
    section, _, name = key.partition(".")
    part = config.get(section) or Namespace()
    value = (part.get("init_args") or Namespace()).get(name) if section == "model" else part.get(name)
    return as_yaml(value.as_dict() if isinstance(value, Namespace) else value)


def _check_init_from(wanted: Any, saved: Any, path: Path) -> None:
    """``--model.init_from`` with ``--ckpt_path``: the checkpoint brings every weight, so a starting point other
    than the one its run recorded would be silently ignored; refuse it instead."""
    if wanted != saved:
        raise ConfigError(
            f"--model.init_from {wanted} with --ckpt_path {path}: a resumed run continues from its checkpoint's "
            f"weights (its run started from {saved}); drop --model.init_from to resume, or drop --ckpt_path to "
            f"start a new run from {wanted}'s weights"
        )


def _check_data_dir(chosen: Any, given: Any, path: Path) -> None:
    """A data folder that came from the checkpoint and not from the user is used only as a folder below the current
    one, named relatively: it decides where data is read from and downloaded to. An empty name (the current folder
    itself), ``~`` (a home folder, wherever something expands it), an absolute path or one that leads out is
    refused."""
    if chosen is None or str(chosen) == str(given):
        return
    why = _data_dir_refusal(str(chosen))
    if why is None:
        return
    shown = str(chosen) if str(chosen).strip() == str(chosen) != "" else repr(str(chosen))
    raise CheckpointError(
        f"the checkpoint {path} names the data folder {shown}, {why}: refusing to read or download data "
        f"there on its word; pass --data.data_dir with the folder you mean (e.g. --data.data_dir data)"
    )


def _data_dir_refusal(name: str) -> str | None:
    """Why a data folder a checkpoint names is not a relative folder below the current one; ``None`` when it is.

    >>> [_data_dir_refusal(name) for name in ("data", "", "~/x", "/etc", "a/../..")]  # doctest: +NORMALIZE_WHITESPACE
    [None, 'an empty name (the current folder itself)', "a '~' path (a home folder)", 'an absolute path',
     'outside the current folder']
    """
    if not name.strip() or os.path.normpath(name) == ".":
        return "an empty name (the current folder itself)"
    if name.startswith("~"):
        return "a '~' path (a home folder)"
    if os.path.isabs(name):
        return "an absolute path"
    folder, here = Path(name).resolve(), Path.cwd().resolve()
    if here not in folder.parents or os.path.normpath(name).startswith(".."):
        return "outside the current folder"
    return None


def blame(message: str, settings: dict[str, Any], source: str = "the checkpoint") -> str | None:
    """``message`` (an error about option ``--key`` or ``key``) reworded to blame ``source`` when the value of
    that key came from it (``settings``: dotted keys to values); ``None`` when it did not."""
    found = re.match(r"^(?:error: )?--([\w.]+)[:\s]\s*(.*?)(?: \(see `[^`]*--help`\))?$", message.strip(), re.S)
    if found is None:
        found = re.match(r"^(\w+) (.*)$", message.strip(), re.S)
    if found is None:
        return None
    key, rest = found.group(1), found.group(2)
    matches = [full for full in settings if full == key or full.endswith("." + key)]
    if not matches:
        return None
    full = matches[0]
    return (
        f"{source}'s {full} ({settings[full]!r}) is refused: {rest.lstrip(': ')}; it came from {source}, not from "
        f"the command line: pass --{full} to override it, or use another checkpoint"
    )
