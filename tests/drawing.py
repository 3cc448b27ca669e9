"""Typed digits drawn with PIL's font: stand-ins for photos and scans of handwritten ones."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def draw_digit(
    digit: int,
    size: int = 120,
    canvas: tuple[int, int] = (200, 160),
    at: tuple[int, int] = (30, 10),
    paper: str = "white",
    ink: str = "black",
    mode: str = "RGB",
) -> Image.Image:
    """A typed digit, as a stand-in for a photo or scan of a handwritten one."""
    image = Image.new("RGB", canvas, paper)
    ImageDraw.Draw(image).text(at, str(digit), fill=ink, font=ImageFont.load_default(size=size))
    return image.convert(mode)


SIZES = {"1": (40, 60), "7": (300, 200)}
"""Extra images of any size: a small and a large one per class."""


def write_extras(root: Path, per_class: int = 2) -> Path:
    """``root/1`` and ``root/7`` holding ``per_class`` typed digits each, of two different sizes."""
    for label, size in SIZES.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            canvas = (size[0] + 10 * index, size[1] + 10 * index)
            draw_digit(int(label), size=min(canvas) * 3 // 4, canvas=canvas, at=(4, 0)).save(
                root / label / f"{index}.png"
            )
    return root
