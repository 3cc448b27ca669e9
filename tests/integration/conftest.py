"""Fixtures of the integration tests alone."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``tests/payload.py`` leaves its mark if anything of it is imported or called."""
    path = tmp_path / "payload-ran"
    monkeypatch.setenv("PAYLOAD_MARKER", str(path))
    return path
