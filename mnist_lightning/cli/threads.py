"""``--torch_threads``: how many CPU threads a process uses, ``auto`` chosen per model class."""

from __future__ import annotations

import importlib
import os

from jsonargparse import Namespace

from mnist_lightning.errors import ConfigError


def cpu_threads(config: Namespace) -> int:
    """``--torch_threads``, with ``auto`` resolved by the model class's ``cpu_threads``, within the cores this
    process may use and within ``OMP_NUM_THREADS`` when it is set (the usual cap where several processes share a
    machine: oversubscribed cores make every one of them slower)."""
    if config.torch_threads != "auto":
        if config.torch_threads < 1:
            raise ConfigError(f"--torch_threads must be >= 1 (or auto), got {config.torch_threads}")
        return config.torch_threads
    module, _, name = str(config.model.get("class_path", "")).rpartition(".")
    try:
        wanted = getattr(importlib.import_module(module), name).cpu_threads
    except (ImportError, ValueError, AttributeError):
        wanted = 1
    devices = config.trainer.get("devices")
    processes = devices if isinstance(devices, int) and devices > 0 else 1
    processes = int(os.environ.get("LOCAL_WORLD_SIZE") or processes)  # torchrun's processes on this machine
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    capped = os.environ.get("OMP_NUM_THREADS", "")
    usable = min(usable, int(capped)) if capped.isdigit() and int(capped) > 0 else usable
    return max(1, usable // processes if wanted is None else min(wanted, usable))
