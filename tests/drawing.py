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
