"""The sixteen pen-stroke hands of the handwriting suite and their split, fixed before any model was measured on
them: TUNING (settings may be chosen on these), HELD_OUT (only ever reported) and SEALED (not looked at until the
end: reported only when asked for by name, never in ``all``)."""

from __future__ import annotations

from mnist_lightning.evaluate.strokes import StrokeHand, allographs

STROKE_HANDS: dict[str, StrokeHand] = {
    # tuning: a plain school hand, the continental forms, a fast and a shaky hand, wide, tiny, backhand, bold
    "neat-school": StrokeHand(allographs(), slant=0.0, aspect=0.6, pen=14, size=0.7, step=4, shake=0.3),
    "continental": StrokeHand(
        allographs(d1="flag-base", d4="closed", d7="crossed", d9="curved"),
        slant=0.1,
        aspect=0.55,
        pen=12,
        step=6,
        shake=0.5,
    ),
    "fast-forward": StrokeHand(allographs(d2="looped", d4="angled"), slant=0.3, aspect=0.5, pen=16, size=0.75, step=30),
    "wide-round": StrokeHand(
        allographs(d6="straight", d8="two-loops"), slant=-0.05, aspect=0.95, pen=22, size=0.6, step=5
    ),
    "tiny-careful": StrokeHand(allographs(d1="flag"), aspect=0.65, pen=10, size=0.3, step=3, shake=0.2),
    "shaky-slow": StrokeHand(
        allographs(d3="flat-top", d5="one-stroke"), slant=0.05, pen=16, size=0.7, step=3, shake=2.5
    ),
    "backhand": StrokeHand(allographs(d1="flag", d7="curved", d9="curved"), slant=-0.25, step=8),
    "bold-big": StrokeHand(allographs(d0="slashed", d4="closed"), aspect=0.7, pen=28, size=0.9, step=10),
    # held out: narrow and tall, a scrawl, small and leaning left, a draftsman's fine pen, a loopy hand
    "narrow-tall": StrokeHand(
        allographs(d1="flag", d2="looped", d4="closed", d7="crossed"),
        slant=0.1,
        aspect=0.4,
        pen=12,
        size=0.85,
        step=6,
    ),
    "scrawl": StrokeHand(
        allographs(d5="one-stroke", d8="two-loops", d9="curved"), slant=0.2, aspect=0.7, pen=18, step=40, shake=1.0
    ),
    "left-lean-small": StrokeHand(
        allographs(d1="flag-base", d3="flat-top", d6="straight"), slant=-0.15, aspect=0.75, pen=14, size=0.4
    ),
    "draftsman": StrokeHand(
        allographs(d0="slashed", d1="flag-base", d4="angled", d7="crossed"), aspect=0.55, pen=8, step=3
    ),
    "loopy": StrokeHand(allographs(d2="looped", d9="curved"), slant=0.15, aspect=0.8, pen=20, step=12, shake=0.8),
    # sealed: a hurried wide hand, a trembling one, a stout one
    "hurried-wide": StrokeHand(allographs(d4="closed", d7="curved"), slant=0.1, aspect=0.9, pen=20, size=0.8, step=28),
    "trembling": StrokeHand(
        allographs(d1="flag", d3="flat-top"), slant=-0.1, aspect=0.55, size=0.55, step=4, shake=3.0
    ),
    "stout": StrokeHand(
        allographs(d0="slashed", d5="one-stroke", d8="two-loops"), slant=0.25, aspect=0.85, pen=26, size=0.5
    ),
}
"""Every stroke hand by name (lower-case with hyphens: apart from the fonts' names at a glance)."""

STROKE_TUNING = (
    "neat-school",
    "continental",
    "fast-forward",
    "wide-round",
    "tiny-careful",
    "shaky-slow",
    "backhand",
    "bold-big",
)
"""Stroke hands to choose settings on: every allograph but none of the held-out hands' combinations of style."""
STROKE_HELD_OUT = ("narrow-tall", "scrawl", "left-lean-small", "draftsman", "loopy")
"""Stroke hands that are only ever reported, beside the held-out fonts."""
STROKE_SEALED = ("hurried-wide", "trembling", "stout")
"""Stroke hands nobody looks at until the end: a last figure, untouched by any decision made on the others."""
