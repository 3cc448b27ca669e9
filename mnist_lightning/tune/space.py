"""The search file (``configs/search/*.yaml``): reading it, checking every value's type and range before anything
is written, and turning the space into train.py options."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from mnist_lightning.errors import ConfigError, one_line

SEARCH_KEYS = {
    "study_name",
    "metric",
    "direction",
    "n_trials",
    "timeout",
    "seed",
    "pruner",
    "config",
    "fixed",
    "space",
    "max_failures",
}
PRUNER_KEYS = {"n_startup_trials": 0, "n_warmup_steps": 0, "interval_steps": 1, "n_min_trials": 1}
"""Optuna's MedianPruner settings a search file may give, each with its smallest accepted value."""
RANGE_KEYS = {"low", "high", "log", "step"}
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""A study's name is a folder name under ``ROOT/search``: no separators, no ``..``."""
MAX_SEED = 2**31 - 1


@dataclass
class Search:
    """A search file after the command line's overrides."""

    study_name: str
    space: dict[str, dict[str, Any]]
    metric: str = "val/acc"
    direction: str = "maximize"
    n_trials: int = 20
    timeout: float | None = None
    seed: int = 42
    pruner: dict[str, int] = field(default_factory=dict)
    config: list[str] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)
    max_failures: int = 5
    """Failed trials in a row after which a process stops searching: a mistake every trial repeats ends the search."""

    def fingerprint(self) -> str:
        """What a study is tied to: continuing it with another space or metric would mix incomparable trials."""
        return json.dumps({"space": self.space, "metric": self.metric, "direction": self.direction}, sort_keys=True)

    def make_pruner(self) -> optuna.pruners.MedianPruner:
        return optuna.pruners.MedianPruner(**{"n_startup_trials": 4, "n_warmup_steps": 2, **self.pruner})


def load_search(path: Path, overrides: dict[str, Any]) -> Search:
    """Read and check a search file; every mistake is one line naming the file (or the overriding option)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--config {path}: not valid YAML ({one_line(str(err))})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("space"), dict) or not raw["space"]:
        raise ConfigError(f"--config {path}: expected a mapping with a non-empty `space:` of options to search")
    unknown = sorted(set(raw) - SEARCH_KEYS, key=str)
    if unknown:
        raise ConfigError(f"--config {path}: unknown key {unknown[0]!r}; accepted: {', '.join(sorted(SEARCH_KEYS))}")
    raw.setdefault("study_name", path.stem)
    given = {key: value for key, value in overrides.items() if value is not None}
    raw.update(given)
    if isinstance(raw.get("config"), str):
        raw["config"] = [raw["config"]]
    for key, value in raw.items():
        problem = check_value(key, value)
        if problem:
            where = f"--{key}" if key in given else f"--config {path}: {key}"
            raise ConfigError(f"{where}: {problem}")
    for name, spec in raw["space"].items():
        check_range(str(name), spec)
    return Search(**raw)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_value(key: str, value: Any) -> str | None:
    """What is wrong with one top-level value of a search file (None when nothing is)."""
    if key == "study_name" and not (isinstance(value, str) and STUDY_NAME.fullmatch(value)):
        return f"expected a name of letters, digits, '.', '_' or '-' (it names a folder), got {value!r}"
    if key == "metric" and not (isinstance(value, str) and value):
        return f"expected the name of a logged metric such as val/acc, got {value!r}"
    if key == "direction" and value not in ("maximize", "minimize"):
        return f"expected maximize or minimize, got {value!r}"
    if key in ("n_trials", "max_failures") and not (is_int(value) and value >= 1):
        return f"expected a whole number >= 1, got {value!r}"
    if key == "timeout" and value is not None and not (is_number(value) and value > 0):
        return f"expected seconds (a number > 0) or null, got {value!r}"
    if key == "seed" and not (is_int(value) and 0 <= value <= MAX_SEED):
        return f"expected a whole number from 0 to {MAX_SEED}, got {value!r}"
    if key == "config" and not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
        return f"expected a train.py config path or a list of them, got {value!r}"
    if key == "fixed" and not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
        return f"expected a mapping of train.py options (without --) to values, got {value!r}"
    if key == "pruner":
        return check_pruner(value)
    return None


def check_pruner(pruner: Any) -> str | None:
    """The MedianPruner's settings: known names, whole numbers, each at least its smallest value."""
    if not isinstance(pruner, dict):
        return f"expected a mapping of MedianPruner settings ({', '.join(PRUNER_KEYS)}), got {pruner!r}"
    for name, value in pruner.items():
        if name not in PRUNER_KEYS:
            return f"unknown MedianPruner setting {name!r}; accepted: {', '.join(PRUNER_KEYS)}"
        if not (is_int(value) and value >= PRUNER_KEYS[name]):
            return f"{name} expects a whole number >= {PRUNER_KEYS[name]}, got {value!r}"
    return None


def check_range(name: str, spec: Any) -> None:
    """A range must hold at least one value (a log range only positive ones, a step a positive number)."""
    where = f"search space, {name}"
    form = "{choices: [...]} or {low: L, high: H[, log: true | step: S]}"
    if not isinstance(spec, dict) or not ({"choices"} == set(spec) or {"low", "high"} <= set(spec) <= RANGE_KEYS):
        raise ConfigError(f"{where}: expected {form}, got {spec!r}")
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ConfigError(f"{where}: empty range (choices must list at least one value)")
        return
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not (is_number(low) and is_number(high)):
        raise ConfigError(f"{where}: low and high must be numbers, got {low!r} and {high!r}")
    if low > high:
        raise ConfigError(f"{where}: empty range (low {low} > high {high})")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if step is not None and not (is_number(step) and step > 0):
        raise ConfigError(f"{where}: step must be a number > 0, got {step!r}")
    if log and step is not None:
        raise ConfigError(f"{where}: give log or step, not both (a log range has no even step)")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")


def suggest(trial: optuna.Trial, name: str, spec: dict[str, Any]) -> Any:
    """Draw one value; choices that are not plain scalars (lists, mappings) are drawn by their JSON text."""
    if "choices" in spec:
        choices = spec["choices"]
        if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            return trial.suggest_categorical(name, choices)
        return json.loads(trial.suggest_categorical(name, [json.dumps(c) for c in choices]))
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log")), spec.get("step")
    if isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int)):
        return trial.suggest_int(name, low, high, log=log, step=step or 1)
    return trial.suggest_float(name, float(low), float(high), log=log, step=step)


def cli_value(value: Any) -> str:
    """How train.py reads a value on its command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def option_args(options: dict[str, Any]) -> list[str]:
    return [token for name, value in options.items() for token in (f"--{name}", cli_value(value))]


def corners(space: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The lowest and the highest value of every parameter: what train.py must accept before any trial runs."""
    for end in (0, -1):
        yield {
            name: spec["choices"][end] if "choices" in spec else (spec["low"], spec["high"])[end]
            for name, spec in space.items()
        }
