"""Every shipped CNN config on handwriting it was never tuned on, and on pictures that are no digits.

    python bench/hands.py --ckpt configs/cnn.yaml=A.ckpt --ckpt configs/cnn_fast.yaml=B.ckpt [--hands held-out]

For each checkpoint (named by the config that trained it): the handwriting suite on ``--hands`` (the held-out
hands by default; ``sealed`` only once, at the end) with its worst hand and worst rendering, how often it is wrong
while sure and how often a digit is flagged (not sure), and the not-digits suite: how often letters in held-out
hands, scribbles and noise are flagged. Writes ``bench/results/hands-<hands>.json``.
"""

from __future__ import annotations

import sys

import torch
from harness import REPO, parser, write_result

from mnist_lightning.evaluate import handwriting, not_digits
from mnist_lightning.inference import load_model


def main() -> int:
    options = parser(__doc__, repeats=1)
    options.add_argument("--ckpt", action="append", required=True, help="CONFIG=PATH, once per model")
    options.add_argument("--hands", default="held-out", choices=["held-out", "sealed", "tuning"])
    options.add_argument("--threads", type=int, default=2)
    args = options.parse_args()
    torch.set_num_threads(args.threads)
    models = {name: load_model(path) for name, path in (entry.split("=", 1) for entry in args.ckpt)}
    hands = handwriting.evaluate(models, args.hands)
    others = not_digits.evaluate(models)
    rows, raw = [], {"handwriting": hands, "not_digits": others}
    for name in models:
        mine, theirs = hands["models"][name], others["models"][name]
        overall = mine["sets"][args.hands]
        worst_hand, worst_rendering = mine["worst_hand"], overall["worst_rendering"]
        rows.append(
            [
                f"`{name}`",
                overall["accuracy"],
                f"{worst_hand['name']} {worst_hand['accuracy']:.2%}",
                f"{worst_rendering['name']} {worst_rendering['accuracy']:.2%}",
                max(entry["wrong_while_sure"] for entry in mine["hands"].values()),
                overall["wrong_while_sure"],
                overall["flagged"],
                theirs["flagged"],
                f"{theirs['worst_kind']['name']} {theirs['worst_kind']['flagged']:.1%}",
            ]
        )
    write_result(
        args.results,
        f"hands-{args.hands}",
        f"Handwriting in the {args.hands} hands, and pictures that are no digits",
        [
            ["model", "", ""],
            ["accuracy", ".2%", ""],
            ["worst hand", "", ""],
            ["worst rendering", "", ""],
            ["wrong while sure, worst hand", ".2%", ""],
            ["wrong while sure", ".2%", ""],
            ["digits flagged", ".2%", ""],
            ["not digits flagged", ".1%", ""],
            ["worst not-digit kind", "", ""],
        ],
        rows,
        notes=[
            f"{hands['images']:,} handwritten digits ({len(next(iter(hands['models'].values()))['hands'])} hands: "
            f"fonts and pen strokes, {len(hands['renderings'])} renderings, {hands['variants']} variants each) and "
            f"{others['images']:,} pictures that are no digits (letters in held-out fonts, scribbles, noise). "
            "Flagged: answered not sure (under 80 %) or refused; a flagged digit counts against a model, a flagged "
            "non-digit for it.",
        ],
        raw=raw,
    )
    print(handwriting.tables(hands, markdown=True))
    print(not_digits.tables(others, markdown=True))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
