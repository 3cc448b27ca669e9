"""A stand-in for malicious code: importing it or calling anything in it leaves a marker file.

Crafted checkpoints name ``payload.touch`` or ``payload.Evil``; the tests assert that neither this module
is imported nor the marker (``$PAYLOAD_MARKER``) written, whatever the checkpoint holds.
"""

from __future__ import annotations

import os
from pathlib import Path


def _mark(how: str) -> None:
    marker = os.environ.get("PAYLOAD_MARKER")
    if marker:
        Path(marker).write_text(how)


_mark("imported")


def touch(*args: object, **kwargs: object) -> float:
    _mark("called")
    return 1.0


class Evil:
    def __init__(self, *args: object, **kwargs: object) -> None:
        _mark("instantiated")
