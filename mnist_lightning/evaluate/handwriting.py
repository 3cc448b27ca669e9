"""The handwriting suite: how a model reads digits in real people's handwriting, drawn as users' images come.

Nothing here comes from MNIST: every digit of every hand (:mod:`.fonts`) is drawn in every rendering
(:mod:`.renderings`) and fed to ``predict_images``, the public API, exactly as a user's PIL images would be. An
image the preprocessing refuses (``ImageError``: "blank") counts as wrong, and is also counted on its own. Choose
settings on the TUNING fonts only; the HELD-OUT fonts give the honest figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from PIL import Image
from torchmetrics.functional.classification import binary_calibration_error

from mnist_lightning.evaluate.fonts import FONT_SETS, HELD_OUT, TUNING, font_paths, font_set
from mnist_lightning.evaluate.renderings import RENDERINGS, VARIANTS, Sample, render_benchmark
from mnist_lightning.evaluate.report import heading, percent, share, table
from mnist_lightning.inference import UNSURE_BELOW, ImageError, predict_images

__all__ = ["FONT_SETS", "HELD_OUT", "RENDERINGS", "TUNING", "evaluate", "font_paths", "render_benchmark", "tables"]
"""The split and the renderings are re-exported: a script that measures on the handwriting needs all of them."""

ECE_BINS = 15


class Outcome(NamedTuple):
    """One image's result: the predicted label and its probability, or None when the image was refused."""

    label: int | None
    confidence: float | None


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
                outcomes.append(Outcome(None, None))
                continue
            top = result.probabilities.max(dim=1).values
            outcomes += [Outcome(int(k), float(p)) for k, p in zip(result.labels, top, strict=True)]
    return outcomes


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

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else float("nan")

    def as_json(self) -> dict:
        """The shares a reader compares (``None`` where nothing was measured), and the counts behind them."""
        return {
            "accuracy": share(self.correct, self.count),
            "images": self.count,
            "refused": self.refused,
            "ece": None if self.ece != self.ece else self.ece,
            "unsure": share(self.unsure, self.count),
            "wrong_while_sure": share(self.wrong_while_sure, self.count),
        }


def score(samples: Sequence[Sample], outcomes: Sequence[Outcome], keep: Callable[[Sample], bool]) -> Score:
    """Accuracy (refused images count as wrong), refusals and ECE (over the images that got a prediction)."""
    chosen = [(s, o) for s, o in zip(samples, outcomes, strict=True) if keep(s)]
    answered = [(s, o) for s, o in chosen if o.label is not None]
    correct = [o.label == s.label for s, o in answered]
    ece = expected_calibration_error([o.confidence for _, o in answered], correct)
    unsure = sum(o.confidence < UNSURE_BELOW for _, o in answered)
    wrong_while_sure = sum(
        o.confidence >= UNSURE_BELOW and not right for (_, o), right in zip(answered, correct, strict=True)
    )
    return Score(sum(correct), len(chosen), len(chosen) - len(answered), ece, unsure, wrong_while_sure)


def _worst(scores: dict[str, dict]) -> dict:
    """The entry with the lowest accuracy, by name: a mean hides the hand or rendering a model cannot read."""
    name = min(scores, key=lambda key: scores[key]["accuracy"] if scores[key]["accuracy"] is not None else 2.0)
    return {"name": name, "accuracy": scores[name]["accuracy"]}


def scores(samples: Sequence[Sample], outcomes: Sequence[Outcome], selection: str) -> dict:
    """One model's scores: per font set (overall, per rendering and the worst), per font and the worst font."""
    drawn = {s.font for s in samples}
    fonts = [f for f in FONT_SETS[selection] if f in drawn]
    sets = {}
    for name in ["held-out", "tuning", "all"] if selection == "all" else [selection]:
        chosen = set(FONT_SETS[name]) & drawn
        in_set = score(samples, outcomes, lambda s, chosen=chosen: s.font in chosen).as_json()
        renderings = {
            r: score(samples, outcomes, lambda s, r=r, chosen=chosen: s.font in chosen and s.rendering == r).as_json()
            for r in RENDERINGS
        }
        sets[name] = {"fonts": [f for f in FONT_SETS[name] if f in chosen], **in_set, "renderings": renderings}
        sets[name]["worst_rendering"] = _worst(renderings)
    per_font = {f: score(samples, outcomes, lambda s, f=f: s.font == f).as_json() | {"set": font_set(f)} for f in fonts}
    return {"sets": sets, "fonts": per_font, "worst_font": _worst(per_font)}


def evaluate(
    models: dict[str, torch.nn.Module],
    selection: str = "all",
    seed: int = 0,
    variants: int = VARIANTS,
    samples: Sequence[Sample] | None = None,
) -> dict:
    """Every model on the fonts of ``selection`` (``tuning``, ``held-out`` or ``all``): the suite's JSON result.

    ``samples`` are the images :func:`render_benchmark` draws for these settings, when the caller drew them
    already. Raises :class:`.fonts.FontsMissingError` (one line naming the packages) before anything is drawn."""
    if samples is None:
        samples = render_benchmark(font_paths(FONT_SETS[selection]), seed, variants)
    images = [s.image for s in samples]
    return {
        "suite": "handwriting",
        "fonts": selection,
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
    """One font set: overall, per rendering, the worst rendering, refusals, calibration, per model."""
    sets = [model["sets"][name] for model in result["models"].values()]
    rows = [[heading("overall", markdown), *(percent(s["accuracy"]) for s in sets)]]
    rows += [[r, *(_cell(s["renderings"][r]) for s in sets)] for r in result["renderings"]]
    worst = [f"{percent(s['worst_rendering']['accuracy'])} ({s['worst_rendering']['name']})" for s in sets]
    rows.append(["worst rendering", *worst])
    rows.append(["refused as blank", *(f"{s['refused']} of {s['images']}" for s in sets)])
    rows.append([f"ECE ({ECE_BINS} bins)", *(percent(s["ece"]) for s in sets)])
    rows.append([f"not sure (under {UNSURE_BELOW:.0%})", *(percent(s["unsure"]) for s in sets)])
    rows.append(["wrong while sure", *(percent(s["wrong_while_sure"]) for s in sets)])
    return table(["rendering", *result["models"]], rows, markdown)


def tables(result: dict, markdown: bool = False) -> str:
    """The suite's tables: a summary per font set (held-out first, the honest one), then per font and the worst."""
    models = list(result["models"].values())
    if not models:
        return ""
    parts = []
    for name, entry in models[0]["sets"].items():
        title = f"{name} fonts ({', '.join(entry['fonts'])}): {entry['images']:,} images"
        parts += [heading(title, markdown), "", _summary(result, name, markdown), ""]
    fonts = list(models[0]["fonts"])
    rows = [[f, font_set(f), *(_cell(m["fonts"][f]) for m in models)] for f in fonts]
    worst = [f"{percent(m['worst_font']['accuracy'])} ({m['worst_font']['name']})" for m in models]
    rows.append(["worst font", "", *worst])
    parts += [heading("per font", markdown), "", table(["font", "set", *result["models"]], rows, markdown)]
    return "\n".join(parts)
