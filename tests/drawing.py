"""Typed digits drawn with PIL's font: stand-ins for photos and scans of handwritten ones."""

from __future__ import annotations

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


Stroke = list[tuple[float, float]]
STYLES: dict[str, tuple[int, list[Stroke]]] = {
    "flagged-1": (1, [[(85, 105), (140, 40), (140, 240)], [(95, 240), (185, 240)]]),
    "crossed-7": (7, [[(80, 50), (200, 50), (120, 240)], [(110, 145), (190, 145)]]),
    "closed-4": (4, [[(165, 250), (165, 30), (75, 170), (205, 170)]]),
    "slashed-0": (
        0,
        [[(140, 35), (85, 80), (80, 190), (140, 245), (195, 190), (195, 80), (140, 35)], [(80, 250), (200, 30)]],
    ),
    "flat-3": (3, [[(80, 45), (195, 45), (130, 120), (185, 150), (195, 200), (150, 245), (90, 230)]]),
}
"""Unusual ways of writing a digit, as strokes on the draw page's 280x280 canvas: the label and the strokes."""


def draw_style(style: str, seed: int, side: int = 280, pen: float = 18.0) -> Image.Image:
    """One writing of ``style`` as a person draws it on the page (black on white): the template's strokes
    scaled, slanted, rotated, shifted and wobbled by a generator seeded with ``seed``, with a pen of about
    ``pen`` px and round ends."""
    import math
    import random

    rng = random.Random(f"{style}-{seed}")
    _, strokes = STYLES[style]
    scale, slant, angle = rng.uniform(0.75, 1.05), rng.uniform(-0.2, 0.2), math.radians(rng.uniform(-8, 8))
    shift = (rng.uniform(-25, 25), rng.uniform(-20, 20))
    width = round(pen * rng.uniform(0.8, 1.2))

    def place(x: float, y: float) -> tuple[float, float]:
        x, y = x - 140 + rng.uniform(-7, 7), y - 140 + rng.uniform(-7, 7)
        x, y = (x + slant * -y) * scale, y * scale
        x, y = x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)
        return x + 140 + shift[0], y + 140 + shift[1]

    image = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        points = [place(x * side / 280, y * side / 280) for x, y in stroke]
        draw.line(points, fill="black", width=width, joint="curve")
        for x, y in points[:: len(points) - 1]:
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill="black")
    return image
