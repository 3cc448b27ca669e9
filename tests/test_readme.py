"""Every Python snippet in README.md runs as written, against a freshly trained run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.unit
def test_readme_has_snippets() -> None:
    assert SNIPPETS


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs(snippet: str, run_cli, synthetic_dir: Path, tmp_path: Path) -> None:
    args = ("--data.data_dir", str(synthetic_dir), "--data.val_size", "200", "--trainer.max_epochs", "1")
    assert run_cli("fit", *args) == 0
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
