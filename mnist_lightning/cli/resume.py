"""The resume policy: what a checkpoint and its run folder bring to a run, and what they may not.

A checkpoint's vetted model and data settings become defaults (explicit options and config files still win);
``fit --ckpt_path last`` also continues with the run's own ``config.yaml`` (vetted, see :mod:`.run_config`),
says which settings changed, and refuses to stretch a learning-rate schedule that already ended. A value that
came from the checkpoint and is refused is blamed on the checkpoint, not on a command-line option; a data
folder the checkpoint names is used only inside the current folder (or where the command line points).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from mnist_lightning.errors import CheckpointError, ConfigError

RUN_DATA_KEYS = ("data_dir", "dataset", "val_size", "seed", "normalize")
"""Data settings a checkpoint brings along, so that ``validate``/``test`` see the split training saw."""
RESULT_SETTINGS = {
    "data": ("batch_size", "seed", "augment", "val_size", "normalize", "dataset"),
    "trainer": ("max_epochs", "max_steps", "accumulate_grad_batches", "precision", "gradient_clip_val"),
    "model": (),
}
"""Settings whose change makes a resumed run differ from an uninterrupted one (every model argument too)."""


def checkpoint_defaults(class_path: str, init_args: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The parser defaults a checkpoint's vetted settings become."""
    defaults: dict[str, Any] = {"model": {"class_path": class_path, "init_args": init_args}}
    defaults.update({f"data.{key}": value for key, value in data.items()})
    return defaults


def with_run_config(args: list[str], subcommand: str, settings: str) -> list[str]:
    """The run's vetted settings go first, as a ``--config``, so that explicit options and config files win."""
    at = args.index(subcommand) + 1 if subcommand in args else 0
    return [*args[:at], "--config", settings, *args[at:]]


def drop_repeated_callbacks(config: Namespace) -> None:
    """``--trainer.callbacks+=X`` typed again on resume appends to the run's own ``X``: keep one of each."""
    callbacks = config.trainer.get("callbacks")
    if isinstance(callbacks, list):
        unique: list[Any] = []
        for spec in callbacks:
            if spec not in unique:
                unique.append(spec)
        config.trainer.callbacks = unique


def check_changes(saved: dict[str, Any], config: Namespace, checkpoint: dict[str, Any], run: str) -> None:
    """Say which settings differ from the run's; refuse to stretch a schedule that already ended."""
    changed = []
    for section, keys in RESULT_SETTINGS.items():
        before, now = saved.get(section) or {}, config.get(section) or Namespace()
        if section == "model":
            before, now = before.get("init_args") or {}, now.get("init_args") or Namespace()
            keys = tuple(key for key, value in before.items() if not isinstance(value, dict))
        for key in keys:
            value, current = before.get(key), now.get(key)
            if key in before and current != value and not isinstance(current, Namespace):
                changed.append(f"{section}.{key} {value} -> {current}")
    if not changed:
        return
    schedules = checkpoint.get("lr_schedulers") or []
    length_changed = any(c.startswith(("trainer.max_epochs", "trainer.max_steps")) for c in changed)
    if length_changed and any(isinstance(s, dict) and s.get("total_steps") for s in schedules):
        raise ConfigError(
            f"{', '.join(changed)}: the run's learning-rate schedule was planned for its original length and "
            "reaches 0 at its end; resume without changing the run's length, or train a new run "
            "(fit without --ckpt_path) with the length you want"
        )
    rank_zero_info(
        f"WARNING: resuming {run} with settings other than the run's ({'; '.join(changed)}): "
        "the result will differ from an uninterrupted run"
    )


def check_data_dir(chosen: Any, given: Any, source: str) -> None:
    """A data folder that came from ``source`` (a checkpoint, a run's config) and not from the user is used only
    inside the current folder: it decides where data is read from and downloaded to."""
    if chosen is None or str(chosen) == str(given):
        return
    folder, here = Path(str(chosen)).resolve(), Path.cwd().resolve()
    if folder == here or here in folder.parents:
        return
    raise CheckpointError(
        f"{source} names the data folder {chosen}, outside the current folder {here}: refusing to read or download "
        f"data there on its word; pass --data.data_dir {chosen} if you mean it, or another folder"
    )


def blame(message: str, settings: dict[str, Any], source: str) -> str | None:
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
