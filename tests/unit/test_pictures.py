"""The pictures TensorBoard shows, drawn without a run: sizes a person can read and the numbers in them."""

from __future__ import annotations

import numpy as np
import torch

from mnist_lightning.pictures import render_confusion_matrix

LEFT, TOP, CELL = 66, 82, 48  # where render_confusion_matrix puts its first cell, and the cell's side


def cell_pixels(image: np.ndarray, row: int, column: int) -> np.ndarray:
    y, x = TOP + row * CELL, LEFT + column * CELL
    return image[y + 2 : y + CELL - 2, x + 2 : x + CELL - 2]


def test_confusion_matrix_is_legible_at_its_natural_size() -> None:
    image = render_confusion_matrix(torch.eye(10, dtype=torch.long) * 500, "Confusion matrix, val (epoch 3)")
    assert image.size == (562, 626), "48 px cells, 18 px counts and a legend below"
    assert image.width <= 1280 // 2, "two images side by side still fit a 1280 px screen"


def test_confusion_matrix_draws_each_count_in_its_cell() -> None:
    matrix = torch.eye(10, dtype=torch.long) * 500
    other = matrix.clone()
    other[3, 3] = 7  # the row's share stays 1: only the number changes
    drawn, redrawn = (np.asarray(render_confusion_matrix(m, "title")) for m in (matrix, other))
    assert (cell_pixels(drawn, 3, 3) != cell_pixels(redrawn, 3, 3)).any()
    changed = np.argwhere((drawn != redrawn).any(axis=2))
    rows, columns = changed[:, 0], changed[:, 1]
    assert TOP + 3 * CELL <= rows.min() <= rows.max() < TOP + 4 * CELL, "only that cell changed"
    assert LEFT + 3 * CELL <= columns.min() <= columns.max() < LEFT + 4 * CELL, "only that cell changed"


def test_confusion_matrix_fits_five_digit_counts_into_a_cell() -> None:
    matrix = torch.eye(10, dtype=torch.long) * 12345
    image = np.asarray(render_confusion_matrix(matrix, "title"))
    left_edge, right_edge = cell_pixels(image, 0, 0)[:, :2], cell_pixels(image, 0, 0)[:, -2:]
    background = cell_pixels(image, 0, 0)[0, 0]
    assert (left_edge == background).all(), "the number stays inside its cell"
    assert (right_edge == background).all(), "the number stays inside its cell"
    assert (cell_pixels(image, 0, 0) != background).any()
