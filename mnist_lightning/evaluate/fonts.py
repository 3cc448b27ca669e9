"""The ten font hands of the handwriting suite (Debian's handwriting fonts) and their split into the TUNING fonts,
which settings may be chosen on, and the HELD-OUT fonts, which only ever give the honest figure (:mod:`.hands` adds
the pen-stroke hands)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mnist_lightning.errors import ConfigError

FONT_ROOT = Path("/usr/share/fonts")
FONTS: dict[str, tuple[str, ...]] = {
    "BecauseWeBuild": ("opentype/bwht/BecauseWeBuild-Regular.otf",),
    "BecauseWeConnect": ("opentype/bwht/BecauseWeConnect-Regular.otf",),
    "BecauseWeCreate": ("opentype/bwht/BecauseWeCreate-Regular.otf",),
    "BecauseWeLearn": ("opentype/bwht/BecauseWeLearn-Regular.otf",),
    "BecauseWeMentor": ("opentype/bwht/BecauseWeMentor-Regular.otf",),
    "BecauseWeOrganize": ("opentype/bwht/BecauseWeOrganize-Regular.otf",),
    "Breip": ("truetype/breip/Breip.ttf", "truetype/breip/breipfont.ttf"),
    "HumorSans": ("truetype/humor-sans/Humor-Sans.ttf",),
    "LeckerliOne": ("truetype/leckerli-one/LeckerliOne-Regular.ttf",),
    "Rufscript": ("truetype/rufscript/Rufscript010.ttf",),
}
"""One hand each, under ``FONT_ROOT``: fonts-bwht (six hands), fonts-breip, fonts-humor-sans, fonts-leckerli-one,
fonts-rufscript. Breip.ttf and breipfont.ttf are two releases of one hand (their digits are pixel-identical), so
Breip counts once: the first file found is used."""
PACKAGES = "fonts-bwht fonts-breip fonts-humor-sans fonts-leckerli-one fonts-rufscript"

TUNING = ("BecauseWeBuild", "BecauseWeConnect", "BecauseWeCreate", "HumorSans", "LeckerliOne")
"""Fonts to choose settings on (preprocessing constants, augmentation, thresholds): thin and thick pens, a brush
script and a bumpy comic hand, so that tuning sees variety."""
HELD_OUT = ("BecauseWeLearn", "BecauseWeMentor", "BecauseWeOrganize", "Breip", "Rufscript")
"""Fonts that are only ever reported, never tuned on: a figure measured on fonts that shaped the settings would
flatter them. Half of the ten hands, three of the six bwht hands and two other families (Breip's fine pen with
open loops is the least MNIST-like hand of all)."""


class FontsMissingError(ConfigError):
    """Debian's handwriting fonts are not installed: the suite is refused before anything is drawn."""


def font_paths(names: Iterable[str] = TUNING + HELD_OUT) -> dict[str, Path]:
    """The installed file of each named hand; raises :class:`FontsMissingError` naming the packages to install."""
    found, missing = {}, []
    for name in names:
        paths = [FONT_ROOT / relative for relative in FONTS[name] if (FONT_ROOT / relative).is_file()]
        if paths:
            found[name] = paths[0]
        else:
            missing.append(name)
    if missing:
        raise FontsMissingError(
            f"handwriting fonts not installed: {', '.join(missing)} (expected under {FONT_ROOT}); "
            f"run: apt-get install {PACKAGES}"
        )
    return found
