"""Temperature scaling (Guo et al., 2017): one scalar ``T`` that divides a trained model's logits so that its
probabilities mean what they say, fitted on the validation split.

The fit searches narrowing grids of temperatures rather than running an optimizer: the binned counts behind
the calibration error at each grid point add up over samples, so a distributed run sums one small tensor over its
ranks (which hold unequal numbers of samples, so their logits cannot be gathered into one tensor) and every rank
picks the same ``T``, deterministically.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SEARCH_RANGE = (0.25, 4.0)
"""Temperatures searched: a trained classifier's ``T`` lies between about 0.5 and 2. A fit never leaves this range,
so a checkpoint's temperature outside it was not fitted here and is refused: at 1e30 every answer would be a
uniform guess read as "0", at 1e-38 the probabilities NaN, at 1e-6 every answer "sure"."""
GRID_POINTS, GRID_ROUNDS = 17, 3
"""Each round evaluates 17 log-spaced temperatures and narrows to the best one's neighbours: after three rounds
the step is 0.1 %, far finer than the calibration error it could leave, for 51 passes over the logits."""
CALIBRATION_BINS = 15
"""Bins of the expected calibration error, the number Guo et al. used."""


def binned_confidence(logits: torch.Tensor, labels: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
    """For every temperature and confidence bin: the summed top probability and the number of right answers,
    shape ``(T, bins, 2)``. Sums, so that the ranks of a distributed run add theirs up."""
    right = (logits.argmax(dim=1) == labels).double()
    scaled = logits.float().unsqueeze(0) / temperatures.to(logits.device, torch.float32).view(-1, 1, 1)
    confidence = scaled.softmax(dim=2).amax(dim=2).double()  # (T, N)
    bins = (confidence * CALIBRATION_BINS).long().clamp_(max=CALIBRATION_BINS - 1)
    sums = torch.zeros(len(temperatures), CALIBRATION_BINS, 2, dtype=torch.float64, device=logits.device)
    sums[..., 0].scatter_add_(1, bins, confidence)
    sums[..., 1].scatter_add_(1, bins, right.expand_as(confidence))
    return sums


def fit_temperature(
    logits: torch.Tensor, labels: torch.Tensor, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> float:
    """The temperature of least expected calibration error of ``logits`` for ``labels``, by narrowing grids.

    The error is minimized rather than the likelihood (Guo et al.'s choice): on the linear model the likelihood's
    temperature made the test set's calibration error worse than no scaling at all.
    ``reduce`` sums the binned counts over the ranks of a distributed run, so every rank picks the same
    temperature from its own share of the samples (ranks hold unequal numbers of them). 1.0 when there is
    nothing to fit.

    >>> generator = torch.Generator().manual_seed(0)
    >>> logits = 3.0 * torch.randn(20000, 10, generator=generator)
    >>> labels = torch.multinomial(logits.softmax(dim=1), 1, generator=generator).squeeze(1)  # calibrated at T=1
    >>> 0.9 < fit_temperature(logits, labels) < 1.1
    True
    >>> 2.7 < fit_temperature(3 * logits, labels) < 3.3  # three times too confident
    True
    """
    low, high = math.log(SEARCH_RANGE[0]), math.log(SEARCH_RANGE[1])
    best = 1.0
    for _ in range(GRID_ROUNDS):
        grid = torch.linspace(low, high, GRID_POINTS, dtype=torch.float64).exp()
        sums = binned_confidence(logits, labels, grid)
        if reduce is not None:
            sums = reduce(sums)
        errors = (sums[..., 0] - sums[..., 1]).abs().sum(dim=1)
        if errors.max() == errors.min():
            return best
        best = float(grid[int(errors.argmin())])
        step = (high - low) / (GRID_POINTS - 1)
        low = max(math.log(best) - step, math.log(SEARCH_RANGE[0]))
        high = min(math.log(best) + step, math.log(SEARCH_RANGE[1]))
    return best
