"""One front door: every command a user runs ends by the one rule of ``mnist_lightning/commands/runner.py``, and
each console script of pyproject's ``[project.scripts]`` is such a command."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from mnist_lightning.commands.runner import run
from mnist_lightning.errors import CheckpointError, ConfigError, DataError
from mnist_lightning.fileio import WriteError

FIRST_WORK = {
    "train": ("MNISTCLI", ["fit"]),
    "predict": ("classify", ["--ckpt", "model.ckpt", "digit.png"]),
    "export": ("exporting.export", ["--ckpt", "model.ckpt", "--out", "model.onnx"]),
    "serve": ("checkpoint_path", ["--ckpt", "best"]),
    "ensemble": ("member_file", ["--ckpt", "a.ckpt", "b.ckpt", "--out", "ensemble.ckpt"]),
    "tune": ("parse", []),
    "evaluate": ("parser", []),
}
"""Each command's first call after its arguments are read (a name in its module), and arguments that reach it."""
RULE = [(ConfigError, 2), (CheckpointError, 2), (DataError, 1), (WriteError, 1)]


def commands() -> dict[str, str]:
    """``name -> module:attribute`` of the console scripts this project installs."""
    scripts = entry_points(group="console_scripts")
    return {script.name: script.value for script in scripts if script.value.startswith("mnist_lightning.")}


def test_every_console_script_is_a_command_behind_the_runner() -> None:
    """``pip install -e .`` again after changing ``[project.scripts]``: the installed entry points are read."""
    installed = commands()
    assert sorted(installed) == sorted(f"mnist-{name}" for name in FIRST_WORK)
    for name in FIRST_WORK:
        assert installed[f"mnist-{name}"] == f"mnist_lightning.commands.{name}:cli"
        module = importlib.import_module(f"mnist_lightning.commands.{name}")
        assert callable(module.cli)
        assert callable(module.main)
    scripts = {script.name: script for script in entry_points(group="console_scripts")}
    assert all(callable(scripts[name].load()) for name in installed)


@pytest.mark.parametrize(("error", "code"), RULE, ids=[error.__name__ for error, _ in RULE])
@pytest.mark.parametrize("name", FIRST_WORK)
def test_each_command_ends_by_the_one_rule(
    name: str, error: type[Exception], code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Refused (2) or failed (1), said in one line ``error: ...`` and no traceback, whichever command raised it."""
    module = importlib.import_module(f"mnist_lightning.commands.{name}")
    attribute, argv = FIRST_WORK[name]
    owner = module
    *path, last = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    message = f"{error.__name__} in {name}: do this instead"

    def raises(*args: object, **kwargs: object) -> None:
        raise error(message)

    monkeypatch.setattr(owner, last, raises)
    assert run(module.main, argv) == code
    assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize("name", ["predict", "export", "serve", "ensemble"])
def test_a_missing_checkpoint_is_refused_naming_the_commands_own_option(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``--ckpt_path`` is ``train.py``'s option; these commands take ``--ckpt``."""
    module = importlib.import_module(f"mnist_lightning.commands.{name}")
    missing = str(tmp_path / "missing.ckpt")
    argv = {
        "predict": ["--ckpt", missing, "digit.png"],
        "export": ["--ckpt", missing, "--out", str(tmp_path / "model.pt")],
        "serve": ["--ckpt", missing],
        "ensemble": ["--ckpt", missing, str(tmp_path / "other.ckpt"), "--out", str(tmp_path / "e.ckpt")],
    }[name]
    assert run(module.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing} does not exist"), err
    assert err.count("\n") == 1, err
    assert "--ckpt_path" not in err


def test_serve_finds_best_and_last_as_its_own_option_says(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    serve = importlib.import_module("mnist_lightning.commands.serve")
    assert run(serve.main, ["--ckpt", "best", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --ckpt best: no checkpoint found in "), err
    assert "pass --ckpt PATH/TO/FILE.ckpt" in err
    assert "--ckpt_path" not in err


NUMERIC = [
    ("serve", ["--ckpt", "best"], "--image-timeout", ["inf", "nan", "0", "-1", "x"]),
    ("serve", ["--ckpt", "best"], "--upload-timeout", ["nan", "0", "inf"]),
    ("serve", ["--ckpt", "best"], "--batch-timeout", ["nan", "-0.5", "inf"]),
    ("serve", ["--ckpt", "best"], "--workers", ["0", "1.5", "-2"]),
    ("serve", ["--ckpt", "best"], "--port", ["80", "70000", "x"]),
    ("serve", ["--ckpt", "best"], "--collect-max-mb", ["nan", "0", "inf"]),
    ("tune", ["--config", "x.yaml"], "--n_trials", ["0", "nan"]),
    ("tune", ["--config", "x.yaml"], "--timeout", ["inf", "nan", "0"]),
    ("tune", ["--config", "x.yaml"], "--n_workers", ["0", "-1"]),
    ("evaluate", ["--ckpt", "x.ckpt"], "--threads", ["0"]),
    ("evaluate", ["--ckpt", "x.ckpt"], "--limit", ["0", "nan"]),
]


@pytest.mark.parametrize(("command", "given", "option", "values"), NUMERIC, ids=[f"{c}{o}" for c, _, o, _ in NUMERIC])
def test_a_numeric_option_that_would_fail_later_is_refused_at_start_in_one_line(
    command: str, given: list[str], option: str, values: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``inf``/``nan`` seconds, a timeout of 0, a count below 1: exit 2 and one line before anything runs (the
    checkpoint and search file named here do not exist: nothing got that far)."""
    module = importlib.import_module(f"mnist_lightning.commands.{command}")
    for value in values:
        assert run(module.main, [*given, option, value]) == 2, value
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith(f"error: argument {option}: "), err
        assert f"(see `mnist-{command} --help`)" in err


NAMES = [
    ("predict", ["--ckpt", "", "digit.png"], "argument --ckpt: an empty name"),
    ("predict", ["--ckpt", "m.ckpt", ""], "argument images: an empty name"),
    ("predict", ["--ckpt", "m.ckpt", "d.png", "--csv", "out", "--json", "./out"], "--csv and --json both name out"),
    ("export", ["--ckpt", "m.ckpt", "--out", "./m.ckpt"], "--out ./m.ckpt is the checkpoint being exported"),
    ("serve", ["--ckpt", "best", "--collect", ""], "argument --collect: an empty name"),
    ("ensemble", ["--ckpt", "a.ckpt", "", "--out", "e.ckpt"], "argument --ckpt: an empty name"),
]


@pytest.mark.parametrize(("command", "argv", "says"), NAMES, ids=[f"{c}-{k}" for k, (c, _, _) in enumerate(NAMES)])
def test_a_name_that_would_mean_the_current_folder_or_overwrite_an_input_is_refused(
    command: str, argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``''`` is the current folder to the file system: every file in it classified, corrections written there."""
    module = importlib.import_module(f"mnist_lightning.commands.{command}")
    assert run(module.main, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert says in err, err
