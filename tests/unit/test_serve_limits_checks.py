"""What no body may do, checked on the decoders alone: JSON nested past the recursion limit is a 400, an error
preprocessing did not foresee is the image's 422."""

from __future__ import annotations

import pytest
from PIL import Image
from serve_helpers import drawing

from mnist_lightning.serve import app, body
from mnist_lightning.serve.app import Digit, Refused, decode_image


def test_json_nesting_beyond_the_recursion_limit_is_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    """The punctuation bound keeps nesting shallow; were it raised, ``RecursionError`` would still be a 400."""
    monkeypatch.setattr(body, "MAX_JSON_PUNCTUATION", 10**7)
    with pytest.raises(body.HTTPException) as refused:
        body.from_json(b"[" * 100_000 + b"]" * 100_000)
    assert refused.value.status_code == 400
    assert "nested too deeply" in refused.value.detail


def test_an_error_preprocessing_did_not_foresee_is_the_images_422(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(image: Image.Image) -> None:
        raise RuntimeError("max(): Expected reduction dim\nto be specified")

    monkeypatch.setattr(app, "preprocess", broken)
    refused = decode_image(drawing())
    assert refused == Refused(
        "this image could not be preprocessed (RuntimeError: max(): Expected reduction dim to be specified)"
    )
    monkeypatch.undo()
    assert isinstance(decode_image(drawing()), Digit)
