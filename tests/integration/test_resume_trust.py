"""What a checkpoint and its run folder may bring to a run: a resume reads no ``config.yaml`` it finds (so names
no code, whatever the file holds, as a mapping or as a string), a checkpoint chooses no data folder outside the
current one, and a refused value from it is blamed on it. The rule is docs/safety.md's trust rule."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import FAST, REPO, best_checkpoint, run_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_lightning.cli.resume import blame


def last_step(root: Path) -> int:
    return torch.load(run_folder(root) / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


def assert_nothing_ran(marker: Path) -> None:
    assert not marker.exists(), marker.read_text()
    assert "payload" not in sys.modules


LAMBDA_CALLBACK = {
    "class_path": "lightning.pytorch.callbacks.LambdaCallback",
    "init_args": {"on_fit_start": "payload.touch"},
}
STRING_SPECS = [
    "{class_path: lightning.pytorch.callbacks.LambdaCallback, init_args: {on_fit_start: payload.touch}}",
    "{class_path: payload.Evil}",
    "payload.Evil",
    "payload.touch",
    "[{class_path: payload.Evil}]",
    "{class_path: torch.optim.lr_scheduler.LambdaLR, init_args: {lr_lambda: payload.touch}}",
]
"""Specs written as YAML strings: jsonargparse reads a string value as YAML, so each would import or call."""


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("trainer.callbacks", [LAMBDA_CALLBACK]),
        ("trainer.callbacks", [{"class_path": "payload.Evil"}]),
        ("trainer.callbacks", STRING_SPECS[0]),
        ("trainer.callbacks", [STRING_SPECS[0]]),
        ("trainer.logger", STRING_SPECS[1]),
        ("trainer.plugins", STRING_SPECS[2]),
        ("model", STRING_SPECS[1]),
        ("model.class_path", "payload.Evil"),
        ("model.init_args.optimizer", STRING_SPECS[3]),
        ("model.init_args.scheduler", STRING_SPECS[5]),
        ("checkpoint", STRING_SPECS[1]),
    ],
    ids=[
        "LambdaCallback",
        "foreign-callback",
        "callbacks-as-string",
        "callback-as-string",
        "logger-as-string",
        "plugin-as-string",
        "model-as-string",
        "model-class-path",
        "optimizer-name",
        "LambdaLR-as-string",
        "checkpoint-as-string",
    ],
)
def test_a_run_config_is_never_read_on_resume_so_nothing_it_names_runs(
    trained: Path, synthetic_dir: Path, run_cli, marker: Path, caplog, where: str, value: object
) -> None:
    config_file = run_folder(trained) / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    section, _, key = where.partition(".")
    if key.startswith("init_args."):
        config[section]["init_args"][key.removeprefix("init_args.")] = value
    elif key:
        config[section][key] = value
    else:
        config[section] = value
    config_file.write_text(yaml.safe_dump(config))
    assert run_cli("fit", "--ckpt_path", "last", "--data.data_dir", str(synthetic_dir)) == 0
    assert_nothing_ran(marker)
    assert last_step(trained) == 20, "the run continued as its checkpoint says: two epochs, already done"
    keep = "fit --config lightning_logs/version_0/config.yaml --ckpt_path last"
    assert keep in caplog.text, "the message says how to keep the run's callbacks"
    assert "settings other than the run's" not in caplog.text, "the checkpoint's own values are no change"


def test_the_run_callbacks_come_back_when_you_name_its_config(synthetic_dir: Path, run_cli, tmp_path: Path) -> None:
    """A file named with ``--config`` is the user's choice: the run's own callback (a class from outside the
    project) comes back; without it the resume keeps the checkpoint's settings alone."""
    count = tmp_path / "count.txt"
    probe = ("--trainer.callbacks+=helpers.CountEvaluated", "--trainer.callbacks.out", str(count))
    data = ("--data.data_dir", str(synthetic_dir), "--model.scheduler", "null")
    assert run_cli("fit", *data, *FAST, *probe) == 0
    count.unlink()
    assert run_cli("fit", "--ckpt_path", "last", *data, "--trainer.max_epochs", "3") == 0
    assert last_step(tmp_path) == 30
    assert not count.exists(), "the run's config.yaml was not read"
    config = str(run_folder(tmp_path) / "config.yaml")
    assert run_cli("fit", "--config", config, "--ckpt_path", "last", *data, "--trainer.max_epochs", "4") == 0
    assert last_step(tmp_path) == 40
    assert count.read_text() == "200", "the callback the named config.yaml holds ran"


CONFIG_KEYS = ["trainer", "model", "data", "checkpoint", "last_checkpoint", "ckpt_path", "config", "callbacks"]
CONFIG_KEYS += ["__path__", "seed_everything", "torch_threads", "class_path", "init_args", "logger"]
PAYLOADS = [*STRING_SPECS, "payload", "!!python/name:payload.touch", "${payload.touch}", "__import__('payload')"]
NAMES = st.sampled_from(CONFIG_KEYS) | st.text(max_size=6)
LEAF = st.none() | st.booleans() | st.integers(-3, 2) | st.floats() | st.text(max_size=12) | st.sampled_from(PAYLOADS)
SPEC = st.fixed_dictionaries(
    {"class_path": st.sampled_from(["payload.Evil", "payload.touch", "lightning.pytorch.callbacks.LambdaCallback"])},
    optional={"init_args": st.dictionaries(st.sampled_from(["on_fit_start", "lr_lambda", "out"]), LEAF, max_size=2)},
)
TREE = st.recursive(LEAF | SPEC, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3))
SPOTS = ["trainer.callbacks", "trainer.logger", "trainer.plugins", "trainer.strategy", "trainer.profiler", "model"]
SPOTS += ["model.class_path", "model.init_args.optimizer", "model.init_args.scheduler", "checkpoint", "data", "config"]
EDITS = st.lists(st.tuples(st.sampled_from(SPOTS), TREE | st.sampled_from(PAYLOADS)), max_size=3)
"""Changes to the run's own ``config.yaml``, where each class and function of a run is named."""
RAW = st.none() | st.dictionaries(NAMES, TREE, max_size=6).map(yaml.safe_dump) | st.sampled_from(PAYLOADS)
"""Or a whole other file."""
MODEL_KEYS = ["_class_path", "_instantiator", "optimizer", "scheduler", "dropout", "deskew", "init_from", "lr"]
DATA_KEYS = ["data_dir", "dataset", "val_size", "seed", "normalize", "batch_size", "augment", "extra_dirs"]
TRAINER_KEYS = ["max_epochs", "max_steps", "accumulate_grad_batches", "gradient_clip_val", "precision"]
TRAINER_KEYS += ["gradient_clip_algorithm", "callbacks", "plugins"]
FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture], "derandomize": True}


@settings(max_examples=30, **FUZZ)
@given(
    edits=EDITS,
    raw=RAW,
    model=st.dictionaries(st.sampled_from(MODEL_KEYS), TREE, max_size=3),
    data=st.dictionaries(st.sampled_from(DATA_KEYS), TREE, max_size=3),
    trainer=st.dictionaries(st.sampled_from(TRAINER_KEYS), TREE, max_size=3) | st.sampled_from(PAYLOADS),
)
def test_a_fuzzed_run_folder_never_imports_or_calls_anything_on_resume(
    shared_run: Path,
    synthetic_dir: Path,
    tmp_path: Path,
    run_cli,
    capsys,
    marker: Path,
    edits: list,
    raw: str | None,
    model: dict,
    data: dict,
    trainer: object,
) -> None:
    """The run folder a resume finds (its ``config.yaml``, as mappings or strings, and its checkpoint's model, data
    and trainer values) chooses values at most: the payload marker never fires, and every answer is an exit code
    with at most a one-line error."""
    shutil.rmtree(tmp_path / "lightning_logs", ignore_errors=True)
    shutil.copytree(shared_run / "lightning_logs", tmp_path / "lightning_logs")
    folder = run_folder(tmp_path)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    for where, value in edits:
        *parents, key = where.split(".")
        section = config
        for parent in parents:
            if not isinstance(section.get(parent), dict):
                section[parent] = {}
            section = section[parent]
        section[key] = value
    (folder / "config.yaml").write_text(raw if raw is not None else yaml.safe_dump(config))
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"].update(model)
    checkpoint["datamodule_hyper_parameters"].update(data)
    saved = checkpoint["callbacks"]["RunSettings"]
    checkpoint["callbacks"]["RunSettings"] = trainer if isinstance(trainer, str) else {**saved, **trainer}
    torch.save(checkpoint, folder / "checkpoints" / "last.ckpt")
    code = run_cli("fit", "--ckpt_path", "last", "--data.data_dir", str(synthetic_dir), "--trainer.max_epochs", "2")
    err = capsys.readouterr().err
    assert code in (0, 1, 2), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 1, err
    assert_nothing_ran(marker)


def test_the_readme_commands_work_as_written_after_its_set_up(synthetic_dir: Path, tmp_path: Path, run_cli) -> None:
    """The README links the MNIST files it has as ``./data``: the runs it trains name a data folder inside the
    current one, which ``test --ckpt_path best`` and ``fit --ckpt_path last`` use as they are written."""
    lines = [line.strip() for line in (REPO / "README.md").read_text().splitlines()]
    link = shlex.split(next(line for line in lines if line.startswith("ln -s ")))
    assert link[2:] == ["../shared/data", "data"]
    assert lines[lines.index(" ".join(link)) + 1] == ".venv/bin/python train.py fit"
    (tmp_path / "data").symlink_to(synthetic_dir)  # the synthetic files stand for ../shared/data
    assert run_cli("fit", *FAST) == 0  # the set-up's `train.py fit`, two short epochs
    written = [shlex.split(line, comments=True) for line in lines if "train.py" in line and "--ckpt_path" in line]
    assert {tuple(args[2:]) for args in written} >= {("fit", "--ckpt_path", "last"), ("test", "--ckpt_path", "best")}
    for args in written:
        assert run_cli(*args[2:]) == 0, shlex.join(args)


def crafted(shared_run: Path, folder: Path, data: dict | None = None, weights: dict | None = None) -> Path:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    checkpoint["datamodule_hyper_parameters"].update(data or {})
    checkpoint["state_dict"].update(weights or {})
    path = folder / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("subcommand", ["test", "validate"])
def test_a_checkpoint_chooses_no_data_folder_outside_the_current_one(
    shared_run: Path, tmp_path: Path, run_cli, capsys, subcommand: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnist_lightning.data import datamodule

    def no_reads(*args: object, **kwargs: object) -> None:
        raise AssertionError("data was read")

    monkeypatch.setattr(datamodule, "load_split", no_reads)
    monkeypatch.setattr(datamodule, "download", no_reads)
    path = crafted(shared_run, tmp_path, data={"data_dir": "/etc"})
    assert run_cli(subcommand, "--ckpt_path", str(path)) == 2
    err = capsys.readouterr().err
    assert "data folder /etc" in err
    assert "--data.data_dir" in err
    assert len(err.strip().splitlines()) == 1


def test_a_checkpoint_data_folder_inside_the_current_one_is_used(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli
) -> None:
    shutil.copytree(synthetic_dir / "MNIST", tmp_path / "here" / "MNIST")
    path = crafted(shared_run, tmp_path, data={"data_dir": "here"})
    assert run_cli("test", "--ckpt_path", str(path)) == 0


@pytest.mark.parametrize("val_size", [70000, "abc"])
def test_a_refused_checkpoint_value_is_blamed_on_the_checkpoint(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys, val_size: object
) -> None:
    path = crafted(shared_run, tmp_path, data={"val_size": val_size})
    assert run_cli("validate", "--ckpt_path", str(path), "--data.data_dir", str(synthetic_dir)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the checkpoint's data.val_size"), err
    assert "--help" not in err
    assert len(err.splitlines()) == 1


def test_a_weights_shape_mismatch_says_what_does_not_fit(
    shared_run: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys
) -> None:
    path = crafted(shared_run, tmp_path, weights={"linear.weight": torch.zeros(10, 783)})
    assert run_cli("test", "--ckpt_path", str(path), "--data.data_dir", str(synthetic_dir)) == 2
    err = capsys.readouterr().err.strip()
    assert "linear.weight is 10x783 in the checkpoint, 10x784 in the model" in err
    assert len(err.splitlines()) == 1


def test_blame_rewords_only_the_options_that_came_from_the_checkpoint() -> None:
    settings = {"data.val_size": 70000}
    said = blame("val_size must be a count, got 70000", settings, "the checkpoint")
    assert said is not None
    assert said.startswith("the checkpoint's data.val_size (70000) is refused: must be a count")
    assert blame("--model.lr: expected float (see `train.py fit --help`)", settings, "the checkpoint") is None


def test_a_refused_value_you_gave_is_not_blamed_on_the_checkpoint(
    shared_run: Path, synthetic_dir: Path, run_cli, capsys
) -> None:
    ckpt = str(best_checkpoint(shared_run))
    assert (
        run_cli("validate", "--ckpt_path", ckpt, "--data.data_dir", str(synthetic_dir), "--data.val_size", "70000") == 2
    )
    err = capsys.readouterr().err.strip()
    assert "checkpoint" not in err, err
    assert "val_size must be a count" in err
