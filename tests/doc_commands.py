"""The commands and snippets of README.md and docs/*.md, found as the documentation tests run them: fenced
``bash`` lines by kind, ``python`` blocks, and the folder the examples expect."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from helpers import REPO
from PIL import Image, ImageDraw, ImageFont

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)
SETUP = (  # run by .ci/run on a fresh clone, not by the tests
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"',
    ".venv/bin/python -m pytest",
    ".venv/bin/python -m pytest tests/system",
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
    if argv[0].startswith("mnist-"):  # a console script of pyproject's [project.scripts]
        return argv[0].removeprefix("mnist-")
    if argv[0] == "curl":
        return "curl"
    if argv[:2] == ["ln", "-s"]:  # the README's data link: test_resume_trust.py runs it with the README's commands
        return "link"
    return "unknown"


COMMANDS = commands()
SNIPPETS = fenced("python")


def ids(items: list[tuple[str, str]]) -> list[str]:
    return [where for where, _ in items]


def of_kind(*kinds: str) -> list[tuple[str, str]]:
    return [(where, line) for where, line in COMMANDS if kind(line) in kinds]


def as_run(line: str, synthetic_dir: Path) -> list[str]:
    """The command's arguments, pointed at the synthetic data instead of the real MNIST files."""
    return [arg.replace("../shared/data", str(synthetic_dir)) for arg in shlex.split(line, comments=True)]


def with_examples(folder: Path) -> Path:
    """``folder`` given what the examples name: ``configs/``, ``my_digit.png`` and ``scans/``; returns it."""
    (folder / "configs").symlink_to(REPO / "configs")
    page = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(page).text((120, 30), "7", fill="navy", font=ImageFont.load_default(size=120))
    page.save(folder / "my_digit.png")
    (folder / "scans").mkdir()
    page.save(folder / "scans" / "scan.png")
    return folder
