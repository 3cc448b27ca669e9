"""The not-digits suite: how often a model admits that a picture is no digit.

Letters, scribbles and noise (:mod:`.not_digit_images`) go through ``predict_images`` as a user's pictures would.
A good model answers them "not sure" (*flagged*: ``Predictions.unsure``), best "does not look like a digit"
(``Predictions.not_a_digit``); an image the preprocessing refuses as blank is flagged too (the user is given an
error, not a digit) and is also counted on its own. The worst kind is the one flagged least often.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from mnist_lightning.evaluate.fonts import HELD_OUT, font_paths
from mnist_lightning.evaluate.not_digit_images import KINDS, SOURCES, NotDigit, render_not_digits
from mnist_lightning.evaluate.outcomes import Outcome, predict
from mnist_lightning.evaluate.renderings import VARIANTS as RENDERINGS_VARIANTS
from mnist_lightning.evaluate.report import heading, percent, share, table
from mnist_lightning.inference import NOT_A_DIGIT_BELOW, UNSURE_BELOW

VARIANTS = RENDERINGS_VARIANTS
"""Seeded variants, as many as the handwriting suite's: 16 letters x 5 fonts x 4 renderings + 20 x (6 scribbles + 3
noises), twice: 1,000 images."""


def score(images: Sequence[NotDigit], outcomes: Sequence[Outcome], keep: Callable[[NotDigit], bool]) -> dict:
    """How many of the chosen images were flagged, said not to be a digit, and refused."""
    chosen = [o for i, o in zip(images, outcomes, strict=True) if keep(i)]
    return {
        "images": len(chosen),
        "flagged": share(sum(o.flagged for o in chosen), len(chosen)),
        "not_a_digit": share(sum(o.not_a_digit for o in chosen), len(chosen)),
        "refused": sum(o.label is None for o in chosen),
    }


def _worst(entries: dict[str, dict]) -> dict:
    """The entry flagged least often: the pictures a model most often takes for a digit."""
    name = min(entries, key=lambda key: entries[key]["flagged"] if entries[key]["flagged"] is not None else 2.0)
    return {"name": name, "flagged": entries[name]["flagged"], "not_a_digit": entries[name]["not_a_digit"]}


def scores(images: Sequence[NotDigit], outcomes: Sequence[Outcome]) -> dict:
    """One model's figures: overall, per kind and per source, and the worst kind and source."""
    kinds = {k: score(images, outcomes, lambda i, k=k: i.kind == k) for k in KINDS}
    sources = {s: score(images, outcomes, lambda i, s=s: i.rendering == s) for s in SOURCES}
    overall = score(images, outcomes, lambda _: True)
    return {**overall, "kinds": kinds, "worst_kind": _worst(kinds), "sources": sources, "worst_source": _worst(sources)}


def evaluate(
    models: dict[str, torch.nn.Module],
    seed: int = 0,
    variants: int = VARIANTS,
    images: Sequence[NotDigit] | None = None,
) -> dict:
    """Every model on the not-digits: the suite's JSON result. ``images`` are what :func:`render_not_digits` draws
    for these settings, when the caller drew them already; the held-out fonts must be installed."""
    if images is None:
        images = render_not_digits(font_paths(HELD_OUT), seed, variants)
    pictures = [i.image for i in images]
    return {
        "suite": "not-digits",
        "seed": seed,
        "variants": variants,
        "images": len(images),
        "thresholds": {"unsure_below": UNSURE_BELOW, "not_a_digit_below": NOT_A_DIGIT_BELOW},
        "kinds": KINDS,
        "models": {name: scores(images, predict(model, pictures)) for name, model in models.items()},
    }


def _row(name: str, entries: Sequence[dict]) -> list[str]:
    """A row: what was drawn, how many images, then each model's share flagged and said to be no digit."""
    cells = [name, str(entries[0]["images"])]
    for entry in entries:
        refused = f" ({entry['refused']} refused)" if entry["refused"] else ""
        cells += [percent(entry["flagged"]) + refused, percent(entry["not_a_digit"])]
    return cells


def tables(result: dict, markdown: bool = False) -> str:
    """Per source and kind, overall and the worst kind: the share flagged and said to be no digit, per model."""
    models = list(result["models"].values())
    if not models:
        return ""
    header = [
        "images",
        "count",
        *(f"{name} {what}" for name in result["models"] for what in ("flagged", "not a digit")),
    ]
    rows = [_row(s, [m["sources"][s] for m in models]) for s in SOURCES]
    rows += [_row(heading(k, markdown), [m["kinds"][k] for m in models]) for k in KINDS]
    rows.append(_row(heading("overall", markdown), models))
    worst = [f"{percent(m['worst_kind']['flagged'])} ({m['worst_kind']['name']})" for m in models]
    rows.append(["worst kind", "", *(cell for w in worst for cell in (w, ""))])
    title = (
        f"not digits: {result['images']:,} images; flagged = not sure (under {UNSURE_BELOW:.0%}) or refused, "
        f"not a digit = under {NOT_A_DIGIT_BELOW:.0%}"
    )
    return "\n".join([heading(title, markdown), "", table(header, rows, markdown)])
