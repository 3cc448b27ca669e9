"""What a model answers for each image of a suite, through ``predict_images`` as a user's image would go: the
label, its probability, and whether the answer says "not sure" or "does not look like a digit"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from PIL import Image

from mnist_lightning.inference import ImageError, predict_images


class Outcome(NamedTuple):
    """One image's result: the predicted label and its probability, or None for both when the image was refused."""

    label: int | None
    confidence: float | None
    unsure: bool = False
    """The answer says "not sure" (``Predictions.unsure``)."""
    not_a_digit: bool = False
    """The answer says "does not look like a digit" (``Predictions.not_a_digit``)."""

    @property
    def flagged(self) -> bool:
        """The user is not given a digit as an answer: "not sure", or the image was refused."""
        return self.unsure or self.label is None


REFUSED = Outcome(None, None)


def predict(model: torch.nn.Module, images: Sequence[Image.Image], batch: int = 64) -> list[Outcome]:
    """Predictions through ``predict_images`` a batch at a time; a batch with a refused image goes one by one."""
    outcomes: list[Outcome] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        try:
            results = [predict_images(model, chunk)]
        except ImageError:
            results = []
            for image in chunk:
                try:
                    results.append(predict_images(model, [image]))
                except ImageError:
                    results.append(None)
        for result in results:
            if result is None:
                outcomes.append(REFUSED)
                continue
            top = result.probabilities.max(dim=1).values
            verdicts = zip(result.labels, top, result.unsure, result.not_a_digit, strict=True)
            outcomes += [Outcome(int(k), float(p), bool(u), bool(n)) for k, p, u, n in verdicts]
    return outcomes
