"""The search file (``configs/search/*.yaml``): reading it, checking every value before anything is written (the
space's ranges by Optuna's own distributions), and turning the space into train.py options."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from mnist_lightning.checkpoint.io import other_kind
from mnist_lightning.errors import ConfigError, one_line
from mnist_lightning.models.checks import is_int

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
PRUNER_SETTINGS = ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials")
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
    kind = other_kind(path)
    if kind is not None:  # a FIFO would be read for ever
        raise ConfigError(f"--config {path} is not a regular file ({kind}): give a search file (YAML)")
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--config {path}: not valid YAML ({one_line(str(err))})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("space"), dict) or not raw["space"]:
        missing = "missing key 'space'; " if isinstance(raw, dict) and "space" not in raw else ""
        raise ConfigError(
            f"--config {path}: {missing}expected a mapping with a non-empty `space:` of options to search"
        )
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
        check_range(path, str(name), spec)
    for config in raw.get("config", []):
        if not Path(config).is_file():
            raise ConfigError(
                f"--config {path}: config: {config} is not a file here (its paths are relative to the current folder, "
                f"{Path.cwd()}); run mnist-tune from the folder they are relative to, or make them absolute"
            )
    return Search(**raw)


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
    """The MedianPruner's settings, whole numbers that Optuna's MedianPruner accepts."""
    if not (isinstance(pruner, dict) and all(is_int(value) for value in pruner.values())):
        return f"expected a mapping of MedianPruner settings ({', '.join(PRUNER_SETTINGS)}) to whole numbers"
    try:
        optuna.pruners.MedianPruner(**pruner)
    except (TypeError, ValueError) as err:
        return one_line(str(err)).replace("MedianPruner.__init__()", "MedianPruner")
    return None


def plain(choices: list[Any]) -> bool:
    """Choices Optuna stores as they are (the others are stored as JSON text)."""
    return all(c is None or isinstance(c, (bool, int, float, str)) for c in choices)


def distribution(spec: dict[str, Any]) -> BaseDistribution:
    """The Optuna distribution of one range of the space (checked by Optuna: a range holds at least one value, a log
    range only positive ones, a step is positive and not given with log). Choices that are not plain scalars
    (lists, mappings) are drawn by their JSON text."""
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list):
            raise ValueError(f"choices must be a list, got {choices!r}")
        return CategoricalDistribution(choices if plain(choices) else [json.dumps(c) for c in choices])
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not (is_number(low) and is_number(high) and (step is None or is_number(step)) and isinstance(log, bool)):
        raise ValueError(f"low, high (and step) must be numbers and log true or false, got {spec!r}")
    if is_int(low) and is_int(high) and (step is None or is_int(step)):
        return IntDistribution(low, high, log=log, step=step or 1)
    return FloatDistribution(float(low), float(high), log=log, step=step)


def check_range(path: Path, name: str, spec: Any) -> None:
    """One range of the space, in the form the search file takes and as Optuna accepts it."""
    form = "{choices: [...]} or {low: L, high: H[, log: true | step: S]}"
    if not isinstance(spec, dict) or not ({"choices"} == set(spec) or {"low", "high"} <= set(spec) <= RANGE_KEYS):
        missing = sorted({"low", "high"} - set(spec)) if isinstance(spec, dict) and "choices" not in spec else []
        said = f"missing key {missing[0]!r}; " if missing else ""
        raise ConfigError(f"--config {path}: space, {name}: {said}expected {form}, got {spec!r}")
    try:
        distribution(spec)
    except ValueError as err:
        raise ConfigError(f"--config {path}: space, {name}: {one_line(str(err))}") from None


def suggest(trial: optuna.Trial, name: str, spec: dict[str, Any]) -> Any:
    """Draw one value of ``name`` from its range."""
    drawn = distribution(spec)
    if isinstance(drawn, CategoricalDistribution):
        value = trial.suggest_categorical(name, drawn.choices)
        return value if plain(spec["choices"]) else json.loads(value)
    if isinstance(drawn, IntDistribution):
        return trial.suggest_int(name, drawn.low, drawn.high, log=drawn.log, step=drawn.step)
    return trial.suggest_float(name, drawn.low, drawn.high, log=drawn.log, step=drawn.step)


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
