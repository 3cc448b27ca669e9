"""What every suite's result becomes: tables for a terminal or Markdown, and one JSON file."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from mnist_lightning.fileio import atomic_write


def table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """Rows as a Markdown table, or as aligned plain text for a terminal.

    >>> print(table(["a", "bb"], [["1", "2"]]))
    a  bb
    1  2
    """
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def heading(title: str, markdown: bool) -> str:
    return f"**{title}**" if markdown else title


def percent(value: float | None) -> str:
    """A share as a percentage, ``n/a`` when nothing was measured.

    >>> percent(0.98765), percent(None)
    ('98.77%', 'n/a')
    """
    return "n/a" if value is None or math.isnan(value) else f"{value:.2%}"


def share(part: int, whole: int) -> float | None:
    """``part / whole``, or None (JSON's null) when there is nothing to divide by."""
    return part / whole if whole else None


def write_json(path: str | Path, result: dict) -> None:
    """The result as indented JSON, written atomically (a reader never sees half a file)."""
    text = json.dumps(result, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda out: out.write(text.encode()))
