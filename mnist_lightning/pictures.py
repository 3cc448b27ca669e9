"""Pictures of a model and its results, drawn with PIL: no Lightning, no TensorBoard, just images.

TensorBoard's IMAGES tab shows an image at its natural size, so text is 14-20 px and a confusion matrix cell
48 px: legible on a 1280 px wide screen without zooming.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


@functools.cache
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_confusion_matrix(matrix: torch.Tensor, title: str, cell: int = 48) -> Image.Image:
    """A confusion matrix as a heat map with the count in every cell (rows: true class, columns: predicted) and a
    legend for its two colours: TensorBoard shows the image at its natural size, so sizes are what a person reads."""
    n = matrix.shape[0]
    counts = matrix.long().cpu()
    share = counts.float() / counts.sum(1, keepdim=True).clamp(min=1)
    left, top = 66, 82
    width = max(left + n * cell + 16, 520)
    image = Image.new("RGB", (width, top + n * cell + 64), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 8), title, fill="black", font=_font(20))
    draw.text((left + n * cell // 2, 36), "predicted", fill="black", font=_font(18), anchor="ma")
    draw.text((6, top + n * cell // 2), "true", fill="black", font=_font(18), anchor="lm")
    for i in range(n):
        draw.text((left + i * cell + cell // 2, top - 4), str(i), fill="black", font=_font(18), anchor="mb")
        draw.text((left - 10, top + i * cell + cell // 2), str(i), fill="black", font=_font(18), anchor="rm")
        for j in range(n):
            strength = share[i, j].item() if i == j else min(1.0, share[i, j].item() * 8)
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=_cell_color(i == j, strength), outline=(210, 210, 210))
            text = str(counts[i, j].item())
            center = (box[0] + cell // 2, box[1] + cell // 2)
            text_color = "white" if i == j and strength > 0.6 else "black"
            draw.text(center, text, fill=text_color, font=_fitting_font(draw, text, cell - 6, 18), anchor="mm")
    legend_y = top + n * cell + 22
    for x, correct, label in ((left, True, "correct (share of the row)"), (left + 270, False, "mistakes")):
        draw.rectangle((x, legend_y, x + 22, legend_y + 22), fill=_cell_color(correct, 0.8), outline=(150, 150, 150))
        draw.text((x + 30, legend_y + 11), label, fill="black", font=_font(16), anchor="lm")
    return image


def _cell_color(correct: bool, strength: float) -> tuple[int, int, int]:
    """Blue for the diagonal, red for mistakes (a mistake's share counts eight-fold so that rare ones show)."""
    if correct:
        return int(255 - 200 * strength), int(255 - 120 * strength), 255
    fade = int(255 - 180 * strength)
    return 255, fade, fade


def _fitting_font(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> ImageFont.ImageFont:
    """The largest font up to ``size`` in which ``text`` fits ``width`` pixels (five-digit counts in a cell)."""
    while size > 10 and draw.textlength(text, font=_font(size)) > width:
        size -= 1
    return _font(size)


def render_filters(weights: torch.Tensor, labels: list[str], side: int = 84, columns: int = 5) -> Image.Image:
    """``(K, H, W)`` weight maps in a grid, red for positive and blue for negative weights, each with its label."""
    rows = (len(weights) + columns - 1) // columns
    image = Image.new("RGB", (columns * (side + 10) + 10, rows * (side + 30) + 10), "white")
    draw = ImageDraw.Draw(image)
    for k, (weight, label) in enumerate(zip(weights, labels, strict=True)):
        w = weight.detach().float().cpu()
        w = (w / w.abs().max().clamp(min=1e-12)).numpy()
        rgb = np.stack([1 + np.minimum(w, 0), 1 - np.abs(w), 1 - np.maximum(w, 0)], axis=-1)
        tile = Image.fromarray((rgb * 255).astype(np.uint8)).resize((side, side), Image.NEAREST)
        x, y = 10 + (k % columns) * (side + 10), 10 + (k // columns) * (side + 30)
        draw.text((x + side // 2, y), label, fill="black", font=_font(16), anchor="ma")
        image.paste(tile, (x, y + 20))
    return image


def render_mistakes(
    images: torch.Tensor,
    true: torch.Tensor,
    pred: torch.Tensor,
    confidence: torch.Tensor,
    scale: int = 3,
    columns: int = 4,
) -> Image.Image:
    """Digits in a grid, each captioned with its true and predicted label and the model's confidence."""
    side, cell = 28 * scale, 28 * scale + 30
    rows = max(1, (len(images) + columns - 1) // columns)
    image = Image.new("RGB", (columns * cell + 8, rows * (side + 42) + 8), "white")
    draw = ImageDraw.Draw(image)
    if len(images) == 0:
        draw.text((image.width // 2, side // 2), "no misclassified digits", fill="black", font=_font(16), anchor="mm")
    for k in range(len(images)):
        pixels = (images[k].reshape(28, 28).clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
        tile = Image.fromarray(pixels).resize((side, side), Image.NEAREST)
        x, y = 8 + (k % columns) * cell + (cell - 8 - side) // 2, 8 + (k // columns) * (side + 42)
        image.paste(tile, (x, y))
        caption = f"true {true[k].item()}, said {pred[k].item()}"
        draw.text((x + side // 2, y + side + 2), caption, fill="black", font=_font(14), anchor="ma")
        draw.text(
            (x + side // 2, y + side + 19),
            f"{confidence[k].item():.0%} sure",
            fill=(170, 0, 0),
            font=_font(14),
            anchor="ma",
        )
    return image
