"""What a resume may take from a run folder's ``config.yaml``: allowlisted classes and plain values, vetted before
jsonargparse sees them.

``fit --ckpt_path last`` continues with the run's own settings, and jsonargparse imports every ``class_path`` in
them and resolves a string given where a callable is accepted (``LambdaCallback(on_fit_start="os.system")``): a
run folder on a shared filesystem would be code. Here the file is read as plain YAML, every class it names must
come from the libraries' and this project's own modules (Lightning callbacks and loggers, torch optimizers and
schedulers, ``mnist_lightning``), take the arguments it is given, and none of them may be a function: a callable
argument takes a class spec of the allowlist, never a name. A class from elsewhere (your own callback) is
accepted when the resume's command line names it again: you vouch for it. What was vetted is what is parsed
(the vetted text is handed over, not the path): the file is read once.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import Trainer

from mnist_lightning.data import MNISTDataModule
from mnist_lightning.errors import ConfigError

ALLOWED_MODULES = (
    "lightning.pytorch.callbacks",
    "lightning.pytorch.loggers",
    "lightning.pytorch.plugins",
    "lightning.pytorch.cli",
    "lightning.pytorch.strategies",
    "lightning.pytorch.profilers",
    "torch.optim",
    "mnist_lightning",
)
"""Where the classes a run's config may name come from (a class path outside them must be given again)."""
SHORT_NAMES = ("lightning.pytorch.callbacks", "lightning.pytorch.loggers", "torch.optim", "torch.optim.lr_scheduler")
"""Where a class path without a module (``EarlyStopping``) is looked up, as jsonargparse does."""
SECTIONS = {"trainer": Trainer, "data": MNISTDataModule}
"""Top-level sections that are the arguments of one known class."""
REFUSED_KEYS = {"config", "__path__", "__default_config__"}
"""Keys that make jsonargparse read more files."""


class RunConfigError(ConfigError):
    """A run folder's ``config.yaml`` names something a resume does not load."""


def vet_run_config(path: Path, vouched: Iterable[str]) -> str:
    """The run's settings as YAML text, after checking everything in them; raises :class:`RunConfigError`.

    ``vouched``: the words of the resume's command line; a class path among them is the user's own choice.
    """
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise RunConfigError(f"cannot resume with the settings in {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(saved, dict):
        raise RunConfigError(f"cannot resume with the settings in {path}: expected a mapping of options")
    words = {word.partition("=")[2] or word for word in map(str, vouched)}
    try:
        for key, value in saved.items():
            if key in SECTIONS and isinstance(value, dict):
                _vet_arguments(SECTIONS[key], value, key, words)
            else:
                _vet(value, key, words)
    except RunConfigError as err:
        raise RunConfigError(
            f"refusing to resume with the settings in {path}: {err}. A run folder's config.yaml may name only the "
            "libraries' and this project's classes and plain values; pass your own class again on the command line "
            "to vouch for it, or resume with --config naming a file you trust"
        ) from None
    return yaml.safe_dump(saved, sort_keys=False)


def _vet(value: Any, where: str, words: set[str]) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _vet(item, f"{where}[{index}]", words)
    elif isinstance(value, dict):
        refused = REFUSED_KEYS & set(value)
        if refused:
            raise RunConfigError(f"{where} has the key {sorted(refused)[0]!r}, which would read another file")
        if "class_path" in value:
            _vet_spec(value, where, words)
        else:
            for key, item in value.items():
                _vet(item, f"{where}.{key}", words)


def _vet_spec(spec: dict[str, Any], where: str, words: set[str]) -> None:
    class_path = spec.get("class_path")
    if not isinstance(class_path, str):
        raise RunConfigError(f"{where}.class_path is {class_path!r}, expected a class path")
    if class_path in words:
        return  # the user named it on this command line
    extra = set(spec) - {"class_path", "init_args", "dict_kwargs"}
    if extra or spec.get("dict_kwargs"):
        raise RunConfigError(f"{where} ({class_path}) has {sorted(extra) or ['dict_kwargs']}, expected init_args")
    cls = _allowed_class(class_path, where)
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, dict):
        raise RunConfigError(f"{where}.init_args is {type(init_args).__name__}, expected a mapping")
    _vet_arguments(cls, init_args, where, words)


def _vet_arguments(cls: type, arguments: dict[str, Any], where: str, words: set[str]) -> None:
    """Each argument must be one ``cls`` takes; a callable one takes only a vetted class spec (or null)."""
    try:
        parameters = inspect.signature(cls, eval_str=True).parameters  # `OptimizerFactory` -> `Callable[...]`
    except (NameError, TypeError, SyntaxError):
        parameters = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name, value in arguments.items():
        parameter = parameters.get(name)
        if parameter is None and not takes_any:
            raise RunConfigError(f"{where}: {cls.__name__} has no argument {name!r}")
        callable_type = parameter is not None and "Callable" in str(parameter.annotation)
        if callable_type and value is not None and not (isinstance(value, dict) and "class_path" in value):
            raise RunConfigError(
                f"{where}.{name} of {cls.__name__} is {str(value)[:80]!r}: a function name, which would be called"
            )
        _vet(value, f"{where}.{name}", words)


def _allowed_class(class_path: str, where: str) -> type:
    """The class ``class_path`` names, if it is one of the allowlisted modules' classes."""
    module_name, _, name = class_path.rpartition(".")
    modules = [module_name] if module_name else list(SHORT_NAMES)
    if module_name and not any(module_name == m or module_name.startswith(m + ".") for m in ALLOWED_MODULES):
        raise RunConfigError(f"{where} names {class_path!r}, a class from outside {', '.join(ALLOWED_MODULES)}")
    for candidate in modules:
        try:
            cls = getattr(importlib.import_module(candidate), name, None)
        except ImportError:
            cls = None
        if inspect.isclass(cls):
            return cls
    raise RunConfigError(f"{where} names {class_path!r}, which is no class of {', '.join(modules)}")
