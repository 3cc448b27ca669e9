"""Trained checkpoints assembled into one ensemble checkpoint (:class:`~mnist_lightning.models.LitEnsemble`), the work
of :mod:`mnist_lightning.commands.ensemble`: the members must share their validation split, because the ensemble's
temperature is fitted on it and it must be held out from every member."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from mnist_lightning.checkpoint import build_model, non_finite_entries, read_checkpoint, resolve_checkpoint, vet_data
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.data.idx import ORIGINAL_COUNTS, raw_files_present, raw_folder
from mnist_lightning.errors import CheckpointError, ConfigError, DataError
from mnist_lightning.fileio import WriteError, atomic_write
from mnist_lightning.inference import load_model, predict_digits
from mnist_lightning.models import ALLOWLIST, LitClassifier, LitEnsemble
from mnist_lightning.models.calibration import fit_temperature

SPLIT_KEYS = ("dataset", "val_size", "seed")
"""The data settings that decide the validation split: every member must have the same."""


def member_file(given: str) -> Path:
    """The checkpoint file ``given`` names: itself, or a folder's best checkpoint of its latest run."""
    path = Path(given)
    if not given.strip():
        raise CheckpointError("--ckpt got an empty name: give each member's .ckpt file or run folder")
    if not path.is_dir():
        return path
    runs = path / "lightning_logs" if (path / "lightning_logs").is_dir() else path
    try:
        return resolve_checkpoint("best", runs)[0]
    except CheckpointError:
        raise CheckpointError(
            f"{given} holds no run with a best checkpoint: pass a .ckpt file, or the --trainer.default_root_dir "
            "of a finished python train.py fit"
        ) from None


def same_weights(one: LitClassifier, other: LitClassifier) -> bool:
    """The same trained parameters: a copy whose temperature or input statistics (buffers) were edited is still
    the same model, and would only make the ensemble look surer of itself."""
    first, second = dict(one.named_parameters()), dict(other.named_parameters())
    return first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)


def split_settings(data: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide the validation split, ``val_size`` as a count: a fraction of the 60,000 training
    images and the count it rounds to are the same split (as ``MNISTDataModule`` takes it)."""
    settings = {key: data[key] for key in SPLIT_KEYS}
    if isinstance(settings["val_size"], float):
        settings["val_size"] = round(settings["val_size"] * ORIGINAL_COUNTS["train"])
    return settings


def read_members(paths: Sequence[str]) -> tuple[list[LitClassifier], dict[str, Any]]:
    """Each checkpoint's model (single models only) and the data settings they share."""
    if len({Path(path).resolve() for path in paths}) < len(paths):
        raise ConfigError("a checkpoint is given twice: an ensemble needs different models (2 or more)")
    models, settings = [], []
    for path in paths:
        checkpoint = read_checkpoint(path)
        model = build_model(checkpoint, ALLOWLIST).eval()
        if isinstance(model, LitEnsemble):
            raise CheckpointError(f"{path} is an ensemble already: pass the checkpoints of its members instead")
        twin = next(
            (other for other, known in zip(paths[: len(models)], models, strict=True) if same_weights(model, known)),
            None,
        )
        if twin is not None:
            raise ConfigError(f"{twin} and {path} hold the same model: an ensemble needs different models (2 or more)")
        data = vet_data(checkpoint.get("datamodule_hyper_parameters"), ("data_dir", *SPLIT_KEYS))
        if not set(SPLIT_KEYS) <= data.keys():
            raise CheckpointError(
                f"{path} does not say which validation split its model held out (no data settings): use "
                "checkpoints written by python train.py fit"
            )
        models.append(model)
        settings.append(data)
    first = split_settings(settings[0])
    for path, data in zip(paths[1:], settings[1:], strict=True):
        differ = [key for key in SPLIT_KEYS if split_settings(data)[key] != first[key]]
        if differ:
            said = ", ".join(f"data.{key} {settings[0][key]!r} vs {data[key]!r}" for key in differ)
            raise ConfigError(
                f"{paths[0]} and {path} held out different validation splits ({said}); the ensemble's temperature "
                "is fitted on a split no member trained on: train the members with the same --data settings "
                "and different --seed_everything"
            )
    return models, settings[0]


def assemble(paths: Sequence[str], data_dir: str | None = None) -> tuple[LitEnsemble, dict[str, Any], dict]:
    """The ensemble of the checkpoints ``paths`` with its temperature fitted on their validation split; also
    the data settings and the validation accuracy of each member (by path) and of the ensemble (``None``)."""
    models, data = read_members(paths)
    folder = data_dir or data["data_dir"]
    if not raw_files_present(raw_folder(folder, data["dataset"]), or_archives=True):
        raise DataError(
            f"no {data['dataset']} files in {raw_folder(folder, data['dataset'])}: pass --data.data_dir, the folder "
            f"that holds {raw_folder('', data['dataset'])}/ (nothing is downloaded here)"
        )
    datamodule = MNISTDataModule(data_dir=folder, **{key: data[key] for key in SPLIT_KEYS}, download=False)
    images, labels = datamodule.split("val")
    accuracy: dict[str | None, float] = {}
    probabilities = []
    for path, model in zip(paths, models, strict=True):
        answers = predict_digits(model, images, 1000)
        if not answers.probabilities.isfinite().all():  # loading refuses NaN weights; an overflow can still do it
            raise CheckpointError(f"{path} gives NaN or infinite probabilities on the validation split")
        accuracy[path] = float((answers.labels == labels).float().mean())
        probabilities.append(answers.probabilities)
    ensemble = LitEnsemble.of(models).eval()
    logits = ensemble.combine(torch.stack(probabilities))  # what the ensemble's forward gives, not run again
    ensemble.temperature.fill_(fit_temperature(logits, labels))
    accuracy[None] = float((logits.argmax(dim=1) == labels).float().mean())
    return ensemble, {**data, "data_dir": datamodule.hparams.data_dir}, accuracy


def save(ensemble: LitEnsemble, data: dict[str, Any], out: str) -> None:
    """Write the ensemble as a checkpoint of this project (atomically; refused if any weight is not finite), and
    check that it loads back as the same ensemble."""
    state = ensemble.state_dict()
    bad = non_finite_entries(state)
    if bad:
        raise CheckpointError(f"refusing to write {out}: {', '.join(bad[:3])} hold NaN or infinite values")
    checkpoint = {
        "state_dict": state,
        "hyper_parameters": dict(ensemble.hparams),
        "datamodule_hyper_parameters": data,
        "pytorch-lightning_version": L.__version__,
        "epoch": 0,
        "global_step": 0,
    }
    atomic_write(out, lambda stream: torch.save(checkpoint, stream))
    images = torch.rand(4, 1, 28, 28)
    if not torch.allclose(load_model(out).probabilities(images), ensemble.probabilities(images), atol=1e-6):
        raise WriteError(f"{out} does not load back as the ensemble it should hold")
