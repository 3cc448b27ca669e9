"""The documentation stays true: the site builds strictly, every command and snippet in README.md and docs/*.md
still runs, and the architecture page lists exactly the package's modules.

Blocks fenced ``bash`` and ``python`` are run; ``console`` and ``text`` blocks are shown only (other machines,
long benchmarks, output). Every ``bash`` line must be a command this file knows how to run, so a new kind of
command cannot slip through untested. All of them share ONE trained run (``shared_run``, copied per test).
"""

from __future__ import annotations

import contextlib
import io
import os
import pkgutil
import re
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from helpers import free_port, nudge_weights
from PIL import Image, ImageDraw, ImageFont

import mnist_lightning

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import docs_images

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)
SETUP = (  # run by .ci/run on a fresh clone, not here
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"',
    ".venv/bin/python -m pytest",
)
PYTHONS = ("python", ".venv/bin/python")


def fenced(language: str) -> list[tuple[str, str]]:
    """``(file:line, text)`` of every block fenced as ``language`` in the README and the docs."""
    found = []
    for path in DOC_FILES:
        text = path.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{path.relative_to(REPO)}:{line}", match.group(2)))
    return found


def commands() -> list[tuple[str, str]]:
    """Every distinct command line of the ``bash`` blocks (continuations joined), where it is first written."""
    found: dict[tuple[str, ...], tuple[str, str]] = {}
    for where, block in fenced("bash"):
        for number, line in enumerate(block.replace("\\\n", " ").splitlines()):
            if line.strip() and not line.lstrip().startswith("#"):
                found.setdefault(tuple(shlex.split(line, comments=True)), (f"{where}+{number}", line.strip()))
    return list(found.values())


def kind(line: str) -> str:
    """What a documented command is: how the tests run it."""
    if line in SETUP:
        return "setup"
    argv = shlex.split(line, comments=True)
    if argv[0] in PYTHONS and argv[1] == "train.py":
        return "train.py"
    if argv[0] in PYTHONS and argv[1] == "-m" and argv[2].startswith("mnist_lightning."):
        return argv[2].removeprefix("mnist_lightning.")
    if argv[0] == "curl":
        return "curl"
    return "unknown"


COMMANDS = commands()
SNIPPETS = fenced("python")


def ids(items: list[tuple[str, str]]) -> list[str]:
    return [where for where, _ in items]


def of_kind(*kinds: str) -> list[tuple[str, str]]:
    return [(where, line) for where, line in COMMANDS if kind(line) in kinds]


def test_the_docs_have_commands_and_snippets_of_every_kind() -> None:
    kinds = {"setup", "train.py", "predict", "export", "ensemble", "serve", "tune", "curl"}
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


def test_readme_stays_short_and_quotes_the_headline_once() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert readme.count("92.55") == 1
    for picture in re.findall(r"\]\((docs/img/[^)]+)\)", readme):
        assert (REPO / picture).is_file(), picture


def test_the_pictures_are_taken_from_a_run_and_committed(shared_run: Path, tmp_path: Path) -> None:
    """``bench/docs_images.py`` saves what ``TensorBoardPictures`` logged, as logged."""
    (run,) = (shared_run / "lightning_logs").glob("version_*")
    saved = docs_images.save_tensorboard_picture(run, "val/filters", tmp_path / "filters.png")
    with Image.open(saved) as picture:
        assert picture.format == "PNG"
        assert picture.width >= 400
    for name in ("draw-page.png", "correction.png", "tensorboard-filters.png"):
        with Image.open(REPO / "docs" / "img" / name) as picture:
            assert picture.format == "PNG"
            assert picture.width >= 400


@pytest.fixture
def workdir(trained: Path, synthetic_dir: Path) -> Path:
    """A copy of the shared run with what the examples name: ``configs/``, ``my_digit.png`` and ``scans/``."""
    (trained / "configs").symlink_to(REPO / "configs")
    page = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(page).text((120, 30), "7", fill="navy", font=ImageFont.load_default(size=120))
    page.save(trained / "my_digit.png")
    (trained / "scans").mkdir()
    page.save(trained / "scans" / "scan.png")
    return trained


def as_run(line: str, synthetic_dir: Path) -> list[str]:
    """The command's arguments, pointed at the synthetic data instead of the real MNIST files."""
    return [arg.replace("../shared/data", str(synthetic_dir)) for arg in shlex.split(line, comments=True)]


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


def run_module(module: str, args: list[str]) -> int:
    """``python -m mnist_lightning.MODULE ARGS`` in this process; returns the exit code."""
    saved = sys.argv
    sys.argv = [module, *args]
    try:
        runpy.run_module(f"mnist_lightning.{module}", run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved
    return 0


@pytest.mark.parametrize(("where", "line"), of_kind("predict", "export"), ids=ids(of_kind("predict", "export")))
def test_predict_and_export_commands_run(
    where: str, line: str, workdir: Path, synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    module, args = kind(line), as_run(line, synthetic_dir)[3:]
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_module(module, args) == 0, line
    if "--out" in args:
        assert (workdir / args[args.index("--out") + 1]).stat().st_size > 0
    if "--csv" in args:
        assert len((workdir / args[args.index("--csv") + 1]).read_text().splitlines()) == 3  # a header, two files


@pytest.mark.parametrize(("where", "line"), of_kind("ensemble"), ids=ids(of_kind("ensemble")))
def test_ensemble_command_runs(where: str, line: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As written, each member folder a copy of the shared run with its weights nudged apart (the command refuses
    one model twice); tests/test_ensemble.py has members trained apart."""
    monkeypatch.chdir(workdir)
    args = shlex.split(line, comments=True)[3:]
    members = args[args.index("--ckpt") + 1 : args.index("--out")]
    for shift, member in enumerate(members):
        shutil.copytree(workdir / "lightning_logs", workdir / member / "lightning_logs")
        nudge_weights(workdir / member, shift)
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_module("ensemble", args) == 0, line
    assert (workdir / args[args.index("--out") + 1]).stat().st_size > 0


@pytest.mark.parametrize(("where", "line"), of_kind("tune"), ids=ids(of_kind("tune")))
def test_tune_command_runs(
    where: str, line: str, workdir: Path, synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As written, cut to one one-epoch trial in this process on the synthetic data."""
    monkeypatch.chdir(workdir)
    quick = ["--n_trials", "1", "--n_workers", "1", "--trainer.max_epochs", "1", "--data.val_size", "200"]
    args = [*as_run(line, synthetic_dir)[3:], *quick, "--data.data_dir", str(synthetic_dir)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_module("tune", args) == 0, line
    assert list(workdir.glob("search/*/best.yaml"))


@contextlib.contextmanager
def serving(line: str, workdir: Path, synthetic_dir: Path) -> Iterator[int]:
    """The documented serve command, on a free port, in the shared run's copy; yields the port once it answers."""
    port = free_port()
    command = [sys.executable, *as_run(line, synthetic_dir)[1:], "--port", str(port)]
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            assert process.poll() is None, f"{line}: exited {process.returncode}: {process.stderr.read()[-2000:]}"
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            pytest.fail(f"{line}: not serving after 300 tries")
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.mark.slow
@pytest.mark.parametrize(("where", "line"), of_kind("serve"), ids=ids(of_kind("serve")))
def test_serve_command_and_the_api_examples_run(where: str, line: str, workdir: Path, synthetic_dir: Path) -> None:
    """The server as documented, and every documented ``curl`` against it (a correction's only when it collects)."""
    assert shutil.which("curl"), "the API examples are checked with curl: apt-get install curl"
    collect = shlex.split(line, comments=True)
    collect = workdir / collect[collect.index("--collect") + 1] if "--collect" in collect else None
    with serving(line, workdir, synthetic_dir) as port:
        for _, curl in of_kind("curl"):
            if "/corrections" in curl and collect is None:
                continue
            call = curl.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            answer = subprocess.run(["bash", "-c", call], cwd=workdir, capture_output=True, text=True, timeout=60)
            assert answer.returncode == 0, f"{curl}: {answer.stderr}"
            assert answer.stdout.strip(), curl
            assert '"error"' not in answer.stdout, f"{curl}: {answer.stdout}"
    if collect is not None:
        assert len(list(collect.glob("7/*.png"))) == 1, "the documented correction is saved as DIR/7/<uuid4>.png"


@pytest.mark.parametrize(("where", "snippet"), SNIPPETS, ids=ids(SNIPPETS))
def test_python_snippet_runs(where: str, snippet: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(snippet, where, "exec"), {"__name__": "__snippet__"})


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """What CI checks: no broken link, anchor or include, no page left out of the navigation."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()
    assert "Shipped configs and models" in (tmp_path / "site" / "results" / "index.html").read_text()


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
