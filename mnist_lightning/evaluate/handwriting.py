"""The handwriting suite: how a model reads digits in many hands, drawn as users' images come.

Nothing here comes from MNIST: every digit of every hand (:mod:`.hands`: handwriting fonts and pen-stroke hands)
is drawn in every rendering (:mod:`.renderings`) and fed to ``predict_images``, the public API, exactly as a user's
PIL images would be. An image the preprocessing refuses (``ImageError``: "blank") counts as wrong, and is also
counted on its own. Choose settings on the TUNING hands only; the HELD-OUT hands give the honest figure, the
SEALED hands a last one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torchmetrics.functional.classification import binary_calibration_error

from mnist_lightning.evaluate.hands import HAND_SETS, hand_kind, hand_set, hand_styles
from mnist_lightning.evaluate.outcomes import Outcome, predict
from mnist_lightning.evaluate.renderings import RENDERINGS, VARIANTS, Sample, render_benchmark
from mnist_lightning.evaluate.report import heading, percent, share, table
from mnist_lightning.inference import UNSURE_BELOW

__all__ = ["HAND_SETS", "RENDERINGS", "Outcome", "evaluate", "hand_styles", "predict", "render_benchmark", "tables"]
"""The sets, the renderings and the predictions are re-exported: a script that measures on the handwriting needs
all of them."""

ECE_BINS = 15


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by how many predictions fall in each:
    torchmetrics' calibration error of the top probability against whether the answer was right."""
    if not confidences:
        return float("nan")
    confidence = torch.tensor(confidences, dtype=torch.float64)
    right = torch.tensor(correct, dtype=torch.long)
    return float(binary_calibration_error(confidence, right, n_bins=bins, norm="l1"))


class Score(NamedTuple):
    correct: int
    count: int
    refused: int
    ece: float
    unsure: int
    """Answers under ``UNSURE_BELOW``: the predict command and the page say "not sure: A or B" for them."""
    wrong_while_sure: int
    """Wrong answers at or over ``UNSURE_BELOW``: the confident mistakes a user is shown."""
    right_while_sure: int
    """Right answers at or over ``UNSURE_BELOW``: the digits a user is simply given."""

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else float("nan")

    def as_json(self) -> dict:
        """The shares a reader compares (``None`` where nothing was measured), and the counts behind them.
        ``flagged`` (answered "not sure" or refused), ``wrong_while_sure`` and ``right_while_sure`` add up to 1."""
        return {
            "accuracy": share(self.correct, self.count),
            "images": self.count,
            "refused": self.refused,
            "ece": None if self.ece != self.ece else self.ece,
            "unsure": share(self.unsure, self.count),
            "flagged": share(self.unsure + self.refused, self.count),
            "wrong_while_sure": share(self.wrong_while_sure, self.count),
            "right_while_sure": share(self.right_while_sure, self.count),
        }


def score(samples: Sequence[Sample], outcomes: Sequence[Outcome], keep: Callable[[Sample], bool]) -> Score:
    """Accuracy (refused images count as wrong), refusals, ECE (over the images that got a prediction) and how
    the answers divide between flagged, wrong while sure and right while sure."""
    chosen = [(s, o) for s, o in zip(samples, outcomes, strict=True) if keep(s)]
    answered = [(s, o) for s, o in chosen if o.label is not None]
    correct = [o.label == s.label for s, o in answered]
    ece = expected_calibration_error([o.confidence for _, o in answered], correct)
    unsure = sum(o.unsure for _, o in answered)
    sure = [right for (_, o), right in zip(answered, correct, strict=True) if not o.unsure]
    refused = len(chosen) - len(answered)
    return Score(sum(correct), len(chosen), refused, ece, unsure, sure.count(False), sure.count(True))


def _worst(scores: dict[str, dict]) -> dict:
    """The entry with the lowest accuracy, by name: a mean hides the hand or rendering a model cannot read."""
    name = min(scores, key=lambda key: scores[key]["accuracy"] if scores[key]["accuracy"] is not None else 2.0)
    return {"name": name, "accuracy": scores[name]["accuracy"]}


def scores(samples: Sequence[Sample], outcomes: Sequence[Outcome], selection: str) -> dict:
    """One model's scores: per hand set (overall, per rendering and the worst), per hand and the worst hand."""
    drawn = {s.hand for s in samples}
    hands = [h for h in HAND_SETS[selection] if h in drawn]
    sets = {}
    for name in ["held-out", "tuning", "all"] if selection == "all" else [selection]:
        chosen = set(HAND_SETS[name]) & drawn
        in_set = score(samples, outcomes, lambda s, chosen=chosen: s.hand in chosen).as_json()
        renderings = {
            r: score(samples, outcomes, lambda s, r=r, chosen=chosen: s.hand in chosen and s.rendering == r).as_json()
            for r in RENDERINGS
        }
        sets[name] = {"hands": [h for h in HAND_SETS[name] if h in chosen], **in_set, "renderings": renderings}
        sets[name]["worst_rendering"] = _worst(renderings)
    per_hand = {
        h: score(samples, outcomes, lambda s, h=h: s.hand == h).as_json() | {"set": hand_set(h), "kind": hand_kind(h)}
        for h in hands
    }
    return {"sets": sets, "hands": per_hand, "worst_hand": _worst(per_hand)}


def evaluate(
    models: dict[str, torch.nn.Module],
    selection: str = "all",
    seed: int = 0,
    variants: int = VARIANTS,
    samples: Sequence[Sample] | None = None,
) -> dict:
    """Every model on the hands of ``selection`` (``tuning``, ``held-out``, ``all`` or ``sealed``): the suite's
    JSON result.

    ``samples`` are the images :func:`render_benchmark` draws for these settings, when the caller drew them
    already. Raises :class:`.fonts.FontsMissingError` (one line naming the packages) before anything is drawn."""
    if samples is None:
        samples = render_benchmark(hand_styles(HAND_SETS[selection]), seed, variants)
    images = [s.image for s in samples]
    return {
        "suite": "handwriting",
        "hands": selection,
        "seed": seed,
        "variants": variants,
        "images": len(samples),
        "renderings": {name: what for name, (what, _) in RENDERINGS.items()},
        "models": {name: scores(samples, predict(model, images), selection) for name, model in models.items()},
    }


def _cell(entry: dict) -> str:
    """The accuracy, and how many images were refused as blank when some were."""
    return percent(entry["accuracy"]) + (f" ({entry['refused']} refused)" if entry["refused"] else "")


def _summary(result: dict, name: str, markdown: bool) -> str:
    """One hand set: overall, per rendering, the worst rendering, refusals, calibration, per model."""
    sets = [model["sets"][name] for model in result["models"].values()]
    rows = [[heading("overall", markdown), *(percent(s["accuracy"]) for s in sets)]]
    rows += [[r, *(_cell(s["renderings"][r]) for s in sets)] for r in result["renderings"]]
    worst = [f"{percent(s['worst_rendering']['accuracy'])} ({s['worst_rendering']['name']})" for s in sets]
    rows.append(["worst rendering", *worst])
    rows.append(["refused as blank", *(f"{s['refused']} of {s['images']}" for s in sets)])
    rows.append([f"ECE ({ECE_BINS} bins)", *(percent(s["ece"]) for s in sets)])
    rows.append([f"not sure (under {UNSURE_BELOW:.0%})", *(percent(s["unsure"]) for s in sets)])
    rows.append(["flagged (not sure or refused)", *(percent(s["flagged"]) for s in sets)])
    rows.append(["wrong while sure", *(percent(s["wrong_while_sure"]) for s in sets)])
    rows.append(["right while sure", *(percent(s["right_while_sure"]) for s in sets)])
    return table(["rendering", *result["models"]], rows, markdown)


def tables(result: dict, markdown: bool = False) -> str:
    """The suite's tables: a summary per hand set (held-out first, the honest one), then per hand and the worst."""
    models = list(result["models"].values())
    if not models:
        return ""
    parts = []
    for name, entry in models[0]["sets"].items():
        title = f"{name} hands ({', '.join(entry['hands'])}): {entry['images']:,} images"
        parts += [heading(title, markdown), "", _summary(result, name, markdown), ""]
    hands = list(models[0]["hands"])
    rows = [[h, hand_set(h), hand_kind(h), *(_cell(m["hands"][h]) for m in models)] for h in hands]
    worst = [f"{percent(m['worst_hand']['accuracy'])} ({m['worst_hand']['name']})" for m in models]
    rows.append(["worst hand", "", "", *worst])
    parts += [heading("per hand", markdown), "", table(["hand", "set", "kind", *result["models"]], rows, markdown)]
    return "\n".join(parts)
