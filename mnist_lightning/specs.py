"""Factories as plain ``{"class_path", "init_args"}`` specs, the form configs and checkpoints hold them in.

A spec is data: writing one needs the import path of a class, reading one back must never import what it
names. So the one way from a spec back to a class is a lookup in an allowlist (:func:`instantiate`). This
module imports nothing of the project, so that both the models (which write specs) and the checkpoint
package (which vets and reads them) can use it without importing each other.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from typing import Any


def import_paths(obj: Any) -> list[str]:
    """Every dotted path that imports ``obj`` itself, shortest first: its package's faces, then its module.

    >>> import torch
    >>> import_paths(torch.optim.Adam)
    ['torch.optim.Adam', 'torch.optim.adam.Adam']
    """
    parts = obj.__module__.split(".")
    paths = []
    for end in range(1, len(parts)):
        package = importlib.import_module(".".join(parts[:end]))
        if getattr(package, obj.__qualname__, None) is obj:
            paths.append(f"{package.__name__}.{obj.__qualname__}")
    return [*paths, f"{obj.__module__}.{obj.__qualname__}"]


def import_path(obj: Any) -> str:
    """The import path jsonargparse writes: the shortest that imports ``obj`` (``mnist_lightning.LitLogReg``,
    ``torch.optim.SGD``).

    >>> import torch
    >>> import_path(torch.optim.SGD), import_path(torch.optim.lr_scheduler.StepLR)
    ('torch.optim.SGD', 'torch.optim.lr_scheduler.StepLR')
    """
    return import_paths(obj)[0]


def factory_class(factory: Any) -> type:
    """The class an optimizer or scheduler factory builds: the class itself, or the one class inside a
    ``functools.partial`` (also the partials jsonargparse builds).

    >>> import torch
    >>> factory_class(functools.partial(torch.optim.SGD, momentum=0.9))
    <class 'torch.optim.sgd.SGD'>
    """
    if isinstance(factory, type):
        return factory
    if isinstance(factory, functools.partial):
        classes = [part for part in (factory.func, *factory.args) if isinstance(part, type)]
        if len(classes) == 1:
            return classes[0]
    raise TypeError(
        f"cannot store {factory!r} in a checkpoint: pass an optimizer/scheduler class or functools.partial of one"
    )


def plain_spec(factory: Any) -> Any:
    """Describe an optimizer or scheduler factory as the plain ``{"class_path", "init_args"}`` the CLI writes.

    ``None`` and specs that are already plain are returned as they are.

    >>> import torch
    >>> plain_spec(functools.partial(torch.optim.SGD, momentum=0.9))
    {'class_path': 'torch.optim.SGD', 'init_args': {'momentum': 0.9}}
    """
    if factory is None or isinstance(factory, dict):
        return factory
    keywords = factory.keywords if isinstance(factory, functools.partial) else {}
    return {"class_path": import_path(factory_class(factory)), "init_args": as_yaml(dict(keywords))}


def as_yaml(value: Any) -> Any:
    """Tuples (``channels``, Adam's ``betas``) as lists, as jsonargparse writes them: plain YAML for
    ``hparams.yaml`` and checkpoints, loadable with ``yaml.safe_load``.

    >>> as_yaml({"betas": (0.9, 0.99)})
    {'betas': [0.9, 0.99]}
    """
    if isinstance(value, dict):
        return {key: as_yaml(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_yaml(item) for item in value]
    return value


def instantiate(spec: Mapping[str, Any] | None, allowed: Mapping[str, type]) -> Callable | None:
    """The factory a spec describes, its class taken from ``allowed`` (path -> class), never imported by name.

    >>> import torch
    >>> allowed = {"torch.optim.SGD": torch.optim.SGD}
    >>> sgd = instantiate({"class_path": "torch.optim.SGD", "init_args": {"momentum": 0.9}}, allowed)
    >>> sgd([torch.nn.Parameter(torch.zeros(1))], lr=0.1).defaults["momentum"]
    0.9
    >>> instantiate({"class_path": "os.system", "init_args": {}}, allowed)
    Traceback (most recent call last):
    ...
    KeyError: "'os.system' is not in the allowlist"
    """
    if spec is None:
        return None
    cls = allowed.get(spec["class_path"])
    if cls is None:
        raise KeyError(f"{spec['class_path']!r} is not in the allowlist")
    return functools.partial(cls, **(spec.get("init_args") or {}))
