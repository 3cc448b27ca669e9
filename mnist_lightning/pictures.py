"""Pictures of a model and its results, drawn with PIL: no Lightning, no TensorBoard, just images.

Sized to be legible at TensorBoard's default card size (about 350-480 px wide, 14-16 px text).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


@functools.cache
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_confusion_matrix(matrix: torch.Tensor, title: str, cell: int = 36) -> Image.Image:
    """A confusion matrix as a heat map with the count in every cell (rows: true class, columns: predicted)."""
    n = matrix.shape[0]
    counts = matrix.long().cpu()
    share = counts.float() / counts.sum(1, keepdim=True).clamp(min=1)
    left, top = 52, 58
    image = Image.new("RGB", (left + n * cell + 12, top + n * cell + 12), "white")
    draw = ImageDraw.Draw(image)
    draw.text((6, 6), title, fill="black", font=_font(15))
    draw.text((left + n * cell // 2, 26), "predicted", fill="black", font=_font(14), anchor="ma")
    draw.text((4, top + n * cell // 2), "true", fill="black", font=_font(14), anchor="lm")
    for i in range(n):
        draw.text((left + i * cell + cell // 2, top - 4), str(i), fill="black", font=_font(14), anchor="mb")
        draw.text((left - 8, top + i * cell + cell // 2), str(i), fill="black", font=_font(14), anchor="rm")
        for j in range(n):
            strength = share[i, j].item() if i == j else min(1.0, share[i, j].item() * 8)
            fade = int(255 - 180 * strength)  # mistakes in red, stronger for a larger share of the row
            color = (int(255 - 200 * strength), int(255 - 120 * strength), 255) if i == j else (255, fade, fade)
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=color, outline=(210, 210, 210))
            text_color = "white" if i == j and strength > 0.6 else "black"
            center = (box[0] + cell // 2, box[1] + cell // 2)
            draw.text(center, str(counts[i, j].item()), fill=text_color, font=_font(14), anchor="mm")
    return image


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
