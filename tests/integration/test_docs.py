"""The documentation stays true: every command and snippet in README.md and docs/*.md still runs (the server's
and the site build in ``tests/system/test_docs_site.py``), and the architecture page lists exactly the package's
modules.

Blocks fenced ``bash`` and ``python`` are run; ``console`` and ``text`` blocks are shown only (other machines,
long benchmarks, output). Every ``bash`` line must be a command this file knows how to run, so a new kind of
command cannot slip through untested. All of them share ONE trained run (``shared_run``, copied per test).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import re
import shlex
import shutil
from pathlib import Path

import pytest
from doc_commands import COMMANDS, SETUP, SNIPPETS, as_run, ids, kind, of_kind, with_examples
from helpers import REPO, nudge_weights
from PIL import Image

import mnist_lightning
from mnist_lightning.commands import runner


def test_the_docs_have_commands_and_snippets_of_every_kind() -> None:
    kinds = {"setup", "link", "train.py", "predict", "export", "ensemble", "serve", "tune", "evaluate", "curl"}
    assert {kind(line) for _, line in COMMANDS} == kinds
    assert len(SNIPPETS) >= 4


def test_every_bash_line_is_a_command_the_tests_run() -> None:
    unknown = [f"{where}: {line}" for where, line in COMMANDS if kind(line) == "unknown"]
    assert not unknown, f"fence these as `console` if they cannot run in a test: {unknown}"


def test_the_readme_set_up_and_test_commands_are_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    for line in SETUP:
        assert line in readme
        assert any(ci_line.startswith(line) for ci_line in ci), line


def test_the_readme_quotes_the_headline_once_and_shows_pictures_that_exist() -> None:
    readme = (REPO / "README.md").read_text()
    assert readme.count("92.55") == 1
    for picture in re.findall(r"\]\((docs/img/[^)]+)\)", readme):
        assert (REPO / picture).is_file(), picture


def test_the_pictures_are_committed() -> None:
    """Taken by ``bench/docs_images.py`` (tests/system/test_bench_scripts.py runs it on a run)."""
    for name in ("draw-page.png", "correction.png", "tensorboard-filters.png"):
        with Image.open(REPO / "docs" / "img" / name) as picture:
            assert picture.format == "PNG"
            assert picture.width >= 400


@pytest.fixture
def workdir(trained: Path) -> Path:
    """A copy of the shared run with what the examples name."""
    return with_examples(trained)


@pytest.mark.parametrize(("where", "line"), of_kind("train.py"), ids=ids(of_kind("train.py")))
def test_train_py_command_runs(where: str, line: str, workdir: Path, synthetic_dir: Path, run_cli) -> None:
    """``fit`` commands are parsed and checked in full (``--print_config``: every option, class and value) but not
    trained; the other subcommands run on the shared run's checkpoints, told where its data is (a data folder a
    checkpoint names outside the current folder is not used on its word)."""
    subcommand, *args = as_run(line, synthetic_dir)[2:]
    if subcommand == "fit":
        args.append("--print_config")
    elif "--data.data_dir" not in args:
        args += ["--data.data_dir", str(synthetic_dir)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_cli(subcommand, *args) == 0, line


def run_command(name: str, args: list[str]) -> int:
    """``mnist-NAME ARGS`` in this process, as its console script runs it; returns the exit code."""
    return runner.run(importlib.import_module(f"mnist_lightning.commands.{name}").main, args)


@pytest.mark.parametrize(
    ("where", "line"), of_kind("predict", "export", "evaluate"), ids=ids(of_kind("predict", "export", "evaluate"))
)
def test_predict_and_export_commands_run(
    where: str, line: str, workdir: Path, synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    name, args = kind(line), as_run(line, synthetic_dir)[1:]
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_command(name, args) == 0, line
    if "--out" in args:
        assert (workdir / args[args.index("--out") + 1]).stat().st_size > 0
    if "--csv" in args:
        assert len((workdir / args[args.index("--csv") + 1]).read_text().splitlines()) == 3  # a header, two files


@pytest.mark.parametrize(("where", "line"), of_kind("ensemble"), ids=ids(of_kind("ensemble")))
def test_ensemble_command_runs(where: str, line: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As written, each member folder a copy of the shared run with its weights nudged apart (the command refuses
    one model twice); tests/test_ensemble.py has members trained apart."""
    monkeypatch.chdir(workdir)
    args = shlex.split(line, comments=True)[1:]
    members = args[args.index("--ckpt") + 1 : args.index("--out")]
    for shift, member in enumerate(members):
        shutil.copytree(workdir / "lightning_logs", workdir / member / "lightning_logs")
        nudge_weights(workdir / member, shift)
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_command("ensemble", args) == 0, line
    assert (workdir / args[args.index("--out") + 1]).stat().st_size > 0


@pytest.mark.parametrize(("where", "line"), of_kind("tune"), ids=ids(of_kind("tune")))
def test_tune_command_runs(
    where: str, line: str, workdir: Path, synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As written, cut to one one-epoch trial in this process on the synthetic data."""
    monkeypatch.chdir(workdir)
    quick = ["--n_trials", "1", "--n_workers", "1", "--trainer.max_epochs", "1", "--data.val_size", "200"]
    args = [*as_run(line, synthetic_dir)[1:], *quick, "--data.data_dir", str(synthetic_dir)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_command("tune", args) == 0, line
    assert list(workdir.glob("search/*/best.yaml"))


@pytest.mark.parametrize(("where", "snippet"), SNIPPETS, ids=ids(SNIPPETS))
def test_python_snippet_runs(where: str, snippet: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(snippet, where, "exec"), {"__name__": "__snippet__"})


def documented_modules() -> set[str]:
    page = (REPO / "docs" / "architecture.md").read_text()
    section = page.split("## The modules", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(mnist_lightning[\w.]*)` \|", section, flags=re.MULTILINE))


def package_modules() -> set[str]:
    prefix = mnist_lightning.__name__ + "."
    walked = pkgutil.walk_packages(mnist_lightning.__path__, prefix)
    return {mnist_lightning.__name__} | {module.name for module in walked}


def test_the_architecture_page_lists_exactly_the_package_modules() -> None:
    documented, real = documented_modules(), package_modules()
    assert not real - documented, f"add to docs/architecture.md: {sorted(real - documented)}"
    assert not documented - real, f"not in the package, remove from docs/architecture.md: {sorted(documented - real)}"


def test_the_architecture_page_is_found_by_the_check() -> None:
    assert len(documented_modules()) > 30
