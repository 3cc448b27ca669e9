"""Writing one benchmark's section of bench/RESULTS.md without touching the others."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, text: str) -> None:
    """Replace the section that starts with ``text``'s first line (a ``## `` heading) in ``path``, or append it."""
    heading = text.splitlines()[0]
    old = path.read_text() if path.exists() else ""
    start = old.find(heading + "\n")
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text.strip("\n") + "\n")
        return
    end = old.find("\n## ", start + len(heading))
    rest = old[end:] if end >= 0 else "\n"
    path.write_text(old[:start] + text.strip("\n") + "\n" + rest)
