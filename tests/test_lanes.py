"""The test lanes README.md promises: the suite spreads over the cores (pytest-xdist); the unit lane and a command
that names test files run in one process, where they are quicker than starting workers."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import pytest_configure, pytest_xdist_auto_num_workers

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@pytest.mark.unit
def test_the_suite_spreads_over_every_core_and_the_unit_lane_runs_in_one_process(pytestconfig: pytest.Config) -> None:
    addopts = pytestconfig.getini("addopts")
    assert addopts[addopts.index("-n") + 1] == "auto"
    assert addopts[addopts.index("--dist") + 1] == "loadscope", "a file's module fixtures are made once"
    assert '\n    "pytest-xdist>=' in PYPROJECT.read_text(), "in the dev extra"
    named, whole = pytest.Config.ArgsSource.ARGS, pytest.Config.ArgsSource.TESTPATHS
    for lane, source, workers in (("unit", whole, 0), ("", named, 0), ("not slow", whole, None), ("", whole, None)):
        config = SimpleNamespace(option=SimpleNamespace(markexpr=lane), args_source=source)
        assert pytest_xdist_auto_num_workers(config) == workers, (lane, source)


@pytest.mark.unit
@pytest.mark.parametrize(("workers", "preset", "expected"), [("2", None, "1"), ("1", None, None), ("2", "3", "3")])
def test_parallel_workers_use_one_thread_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, workers: str, preset: str | None, expected: str | None
) -> None:
    """README: "one CPU thread per worker"; the commands the tests start inherit it (``--torch_threads auto``)."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", workers)
    if preset is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", preset)
    try:
        pytest_configure(SimpleNamespace())
        assert os.environ.get("OMP_NUM_THREADS") == expected
        assert torch.get_num_threads() == (1 if expected == "1" else threads)
    finally:
        torch.set_num_threads(threads)
