"""The package's import graph keeps its contracts (pyproject's ``[tool.importlinter]``: the layers, the checkpoint
package importing no model, no import circle), and every module stays short enough to read in one sitting."""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

import mnist_lightning

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(mnist_lightning.__file__).parent
MAX_LINES = 400


def test_the_import_contracts_are_kept(capsys: pytest.CaptureFixture) -> None:
    """What ``lint-imports`` checks, function-local imports included, ``if TYPE_CHECKING:`` ones left out."""
    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report  # the report names the broken contract and the imports that break it
    assert "Contracts: 3 kept, 0 broken." in report


def test_no_module_is_over_400_lines() -> None:
    """A module longer than this holds more than one idea: split it (import-linter does not count lines)."""
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
