"""What a checkpoint may bring: allowlisted classes and plain values, checked before anything is imported,
allocated or called, and the model built from them here rather than by jsonargparse, then given its checked weights.

A checkpoint is data from somewhere else. ``torch.load(weights_only=True)`` keeps pickled code out, but the
hyperparameters inside are still instructions: Lightning's ``load_from_checkpoint`` and LightningCLI hand
them to jsonargparse, which imports any ``class_path`` and resolves any string given where a callable is
accepted (``{"lr_lambda": "os._exit"}`` runs ``os._exit``). Here every value is checked against what this
project's own signatures accept: model classes and optimizers/schedulers from an allowlist, their arguments
by name, plain numbers, flags and a few known strings, sizes bounded.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import ReduceLROnPlateau as LightningReduceLROnPlateau
from torch.optim import lr_scheduler

from mnist_lightning.checkpoint.io import non_finite_entries
from mnist_lightning.errors import CheckpointError
from mnist_lightning.specs import import_path, import_paths, instantiate

INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"


def by_path(classes: Iterable[type]) -> dict[str, type]:
    """Each class under every path that imports it: its public one (``mnist_lightning.LitLogReg``), its
    package's (``mnist_lightning.models.LitLogReg``, written by version 0.1) and its defining module's."""
    return {path: cls for cls in classes for path in import_paths(cls)}


OPTIMIZERS = by_path(
    obj
    for name in torch.optim.__all__
    if isinstance(obj := getattr(torch.optim, name), type)
    and issubclass(obj, torch.optim.Optimizer)
    and obj is not torch.optim.Optimizer
)
SCHEDULERS = by_path(
    [
        lr_scheduler.StepLR,
        lr_scheduler.MultiStepLR,
        lr_scheduler.ConstantLR,
        lr_scheduler.LinearLR,
        lr_scheduler.ExponentialLR,
        lr_scheduler.PolynomialLR,
        lr_scheduler.CosineAnnealingLR,
        lr_scheduler.CosineAnnealingWarmRestarts,
        lr_scheduler.CyclicLR,
        lr_scheduler.OneCycleLR,
        lr_scheduler.ReduceLROnPlateau,
        LightningReduceLROnPlateau,
    ]
)
"""Torch's schedulers whose arguments are all numbers, flags or fixed strings (no LambdaLR: its argument is
code); a project's own schedulers are added by its :class:`Allowlist`."""


@dataclass(frozen=True)
class Allowlist:
    """The classes a checkpoint may name, by every path that imports them.

    ``models`` are the caller's model classes (LightningModules whose ``check_hparams`` classmethod refuses bad
    hyperparameters); ``schedulers`` extends torch's schedulers with the caller's own. They are passed in rather
    than imported here, so that the models can load checkpoints without an import circle.
    """

    models: Mapping[str, type] = field(default_factory=dict)
    schedulers: Mapping[str, type] = field(default_factory=lambda: dict(SCHEDULERS))
    optimizers: Mapping[str, type] = field(default_factory=lambda: dict(OPTIMIZERS))

    @classmethod
    def of(cls, models: Iterable[type], schedulers: Iterable[type] = ()) -> Allowlist:
        """Torch's optimizers and schedulers, plus ``models`` and the extra ``schedulers``."""
        return cls(models=by_path(models), schedulers={**SCHEDULERS, **by_path(schedulers)})

    def model_paths(self) -> list[str]:
        """The public path of each model class, for messages."""
        return sorted({import_path(model) for model in self.models.values()})


NEVER_FROM_A_CHECKPOINT = {"params", "optimizer", "lr", "lr_lambda", "scale_fn", "schedulers"}
"""Arguments that are objects or code, or (``lr``) that the model's own ``lr`` sets."""
DEFAULT_CLASS_PATH = "mnist_lightning.LitLogReg"
"""The model of checkpoints that name none (written before models stored their class path)."""
KEYS = {"class_path", "init_args"}
STRING_ARGUMENTS = {"mode", "threshold_mode", "anneal_strategy", "scale_mode", "monitor"}
MAX_LIST = 1_000
MAX_STRING = 4_096
MAX_MEMBERS = 16
"""Models a checkpoint may nest (an ensemble's members): each is built and run for every answer."""


def _refuse(message: str) -> CheckpointError:
    return CheckpointError(f"Refusing the checkpoint: {message}.")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plain_value(value: Any, where: str, strings: bool = True) -> Any:
    """``value`` if it is a flag, number, short string, None or a short list of numbers, else refused."""
    if value is None or isinstance(value, bool) or _is_number(value):
        return value
    if isinstance(value, str) and strings and len(value) <= MAX_STRING:
        return value
    if isinstance(value, (list, tuple)) and len(value) <= MAX_LIST and all(_is_number(v) for v in value):
        return list(value)
    raise _refuse(f"{where} holds {_describe(value)}, expected a number, a flag or a short list of numbers")


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a list nested thousands deep, from a crafted checkpoint
        return f"a {type(value).__name__} nested too deep to show"
    return text if len(text) <= 80 else f"a {type(value).__name__} of {len(text):,} characters"


def vet_factory(spec: Any, key: str, allowed: Mapping[str, type]) -> dict[str, Any] | None:
    """An optimizer or scheduler ``{"class_path", "init_args"}`` from the allowlist, with plain arguments it takes.

    ``key`` (``optimizer`` or ``scheduler``) names it in messages.
    """
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or not isinstance(spec.get("class_path"), str) or set(spec) - KEYS:
        raise _refuse(f"its {key} is {_describe(spec)}, expected {{'class_path': ..., 'init_args': {{...}}}}")
    class_path = spec["class_path"]
    cls = allowed.get(class_path)
    if cls is None:
        raise _refuse(f"its {key} {class_path!r} is not a torch {key} this project accepts")
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise _refuse(f"its {key}.init_args is {_describe(init_args)}, expected a mapping")
    accepted = set(inspect.signature(cls).parameters) - NEVER_FROM_A_CHECKPOINT
    args = {}
    for name, value in init_args.items():
        if name not in accepted:
            raise _refuse(f"its {key} {cls.__name__} has no argument {name!r} a checkpoint may set")
        args[name] = plain_value(value, f"{key}.{name}", strings=name in STRING_ARGUMENTS)
    return {"class_path": import_path(cls), "init_args": args}


@dataclass(frozen=True)
class VettedModel:
    """A checkpoint's model, described by checked plain values only."""

    cls: type
    init_args: dict[str, Any]

    @property
    def class_path(self) -> str:
        return import_path(self.cls)

    @property
    def hparams(self) -> dict[str, Any]:
        """The checked values as a checkpoint stores them: the arguments and the ``_class_path``."""
        return {"_class_path": self.class_path, **self.init_args}

    def build(self, allowed: Allowlist, **overrides: Any) -> Any:
        """The model, with optimizer and scheduler classes taken from the allowlist, not imported by name."""
        args = {**self.init_args, **overrides}
        if isinstance(args.get("optimizer"), dict):
            args["optimizer"] = instantiate(args["optimizer"], allowed.optimizers)
        if isinstance(args.get("scheduler"), dict):
            args["scheduler"] = instantiate(args["scheduler"], allowed.schedulers)
        try:
            return self.cls(**args)
        except ValueError as err:  # ConfigError: the model refused a value
            raise CheckpointError(f"The checkpoint's hyperparameters are invalid: {err}") from None


def vet_model(hparams: Any, allowed: Allowlist) -> VettedModel:
    """Check a checkpoint's model hyperparameters before anything is imported or allocated for them."""
    if not isinstance(hparams, Mapping) or not hparams:
        raise CheckpointError(
            "The checkpoint holds no model hyperparameters: it was not written by this project's train.py or "
            "models. Load it with the model class it was made for, or retrain with python train.py fit."
        )
    class_path = hparams.get("_class_path", DEFAULT_CLASS_PATH)
    if not isinstance(class_path, str) or class_path not in allowed.models:
        raise CheckpointError(
            f"The checkpoint names model class {_describe(class_path)}; only {allowed.model_paths()} are loaded."
        )
    if hparams.get("_instantiator", INSTANTIATOR) != INSTANTIATOR:
        raise CheckpointError(f"The checkpoint names instantiator {_describe(hparams['_instantiator'])}; refusing it.")
    cls = allowed.models[class_path]
    parameters = inspect.signature(cls).parameters
    init_args: dict[str, Any] = {}
    for name, value in hparams.items():
        if name in ("_class_path", "_instantiator"):
            continue
        if name not in parameters:
            raise _refuse(f"{cls.__name__} has no argument {_describe(name)}")
        if name == "optimizer":
            init_args[name] = vet_factory(value, name, allowed.optimizers)
        elif name == "scheduler":
            init_args[name] = vet_factory(value, name, allowed.schedulers)
        elif name in getattr(cls, "nested_models", ()):
            init_args[name] = [member.hparams for member in vet_members(value, name, allowed)]
        else:
            init_args[name] = plain_value(value, name)
    try:
        cls.check_hparams(init_args)
    except ValueError as err:
        raise CheckpointError(f"The checkpoint's hyperparameters are invalid: {err}") from None
    return VettedModel(cls, init_args)


def vet_members(value: Any, where: str, allowed: Allowlist) -> list[VettedModel]:
    """The models an ensemble nests (``where`` names the argument), each vetted as a checkpoint's own model; a
    member that nests models again is refused, so vetting never recurses twice."""
    if not isinstance(value, (list, tuple)):
        raise _refuse(f"{where} is {_describe(value)}, expected a list of 1-{MAX_MEMBERS} models' hyperparameters")
    if not 1 <= len(value) <= MAX_MEMBERS:
        raise _refuse(f"{where} holds {len(value):,} models, expected 1-{MAX_MEMBERS}")
    for number, member in enumerate(value):  # before vetting any: a crafted checkpoint could nest ensembles without end
        if not isinstance(member, Mapping) or not member:
            raise _refuse(f"{where}[{number}] is {_describe(member)}, expected a model's hyperparameters")
        path = member.get("_class_path", DEFAULT_CLASS_PATH)
        cls = allowed.models.get(path) if isinstance(path, str) else None
        if getattr(cls, "nested_models", ()):
            raise _refuse(f"{where} holds a {cls.__name__}, which nests models itself; members must be single models")
    return [vet_model(member, allowed) for member in value]


def vet_data(hparams: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The data settings ``keys`` of a checkpoint, as plain values of the types the data module takes."""
    if not isinstance(hparams, Mapping):
        return {}
    settings = {}
    for key in keys:
        if key in hparams:
            settings[key] = plain_value(hparams[key], f"data.{key}")
    for key, kind in (("data_dir", str), ("dataset", str), ("seed", int), ("normalize", bool)):
        if key in settings and not isinstance(settings[key], kind):
            raise _refuse(f"data.{key} is {_describe(settings[key])}, expected a {kind.__name__}")
    return settings


def build_model(
    checkpoint: dict[str, Any], allowed: Allowlist, expected: type[L.LightningModule] | None = None, **overrides: Any
) -> Any:
    """The checkpoint's model with its weights, built from vetted hyperparameters (see :mod:`.vetting`).

    ``expected`` refuses another model class (``LitLogReg.load_from_checkpoint`` of an MLP); ``overrides``
    replace hyperparameters, as ``load_from_checkpoint(path, lr=...)`` does.
    """
    vetted = vet_model(checkpoint.get("hyper_parameters"), allowed)
    if expected is not None and not issubclass(vetted.cls, expected):
        raise CheckpointError(
            f"The checkpoint holds a {vetted.cls.__name__}, not a {expected.__name__}: load it with "
            f"{vetted.cls.__name__}.load_from_checkpoint or mnist_lightning.load_model."
        )
    model = vetted.build(allowed, **overrides)
    check_weights(model, checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    return model


def check_weights(model: L.LightningModule, checkpoint: dict[str, Any], why: str = "") -> None:
    """Refuse a checkpoint whose weights do not fit ``model`` (before a restore fails with a traceback) or hold NaN
    or infinity; ``why`` adds a cause the caller knows of. Legacy checkpoints first get their statistics moved into
    the weights, and the model bounds its stored scalars (its message, the same in every command, comes first)."""
    model.on_load_checkpoint(checkpoint)
    bad = non_finite_entries(checkpoint["state_dict"])
    if bad:  # never written by this project (AtomicCheckpointIO refuses them): answers would be NaN
        raise CheckpointError(
            f"The checkpoint's {', '.join(bad[:3])} hold NaN or infinite values: it is damaged or was "
            "written by a run that diverged. Use another checkpoint of the run."
        )
    misfit = weights_misfit(model.state_dict(), checkpoint["state_dict"])
    if misfit:
        raise CheckpointError(
            f"The checkpoint's weights do not fit {type(model).__name__} ({misfit}): it is not a checkpoint of this "
            f"project, or its file was altered{why}."
        )


def weights_misfit(expected: dict[str, Any], given: dict[str, Any]) -> str | None:
    """What in the weights ``given`` does not fit a model whose ``state_dict()`` is ``expected`` (names missing or
    unexpected, shapes that differ), said in a few words; ``None`` when they fit. Nothing is built or copied."""
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    shapes = [
        f"{name} is {_shape(given[name])} in the checkpoint, {_shape(tensor)} in the model"
        for name, tensor in expected.items()
        if name in given and _shape(given[name]) != _shape(tensor)
    ]
    said = [f"missing {missing[:4]}"] if missing else []
    said += [f"unexpected {unexpected[:4]}"] if unexpected else []
    said += shapes[:3]
    return "; ".join(said) or None


def _shape(value: Any) -> str:
    return "x".join(map(str, value.shape)) or "a scalar" if isinstance(value, torch.Tensor) else type(value).__name__
