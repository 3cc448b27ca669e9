"""The small checks that models' ``check_arguments`` are written with: each refusal is one line naming the
argument, what it got and what it takes."""

from __future__ import annotations

from typing import Any

from mnist_lightning.errors import ConfigError

MAX_PARAMETERS = 50_000_000


def require(condition: bool, message: str) -> None:
    """Refuse a hyperparameter with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def is_int(value: Any) -> bool:
    """A whole number, and not a flag (``True`` is an ``int`` to Python).

    >>> is_int(3), is_int(3.0), is_int(True)
    (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)


def check_input_dim(input_dim: Any) -> None:
    """Models of flat images take ``input_dim`` pixels (784 for MNIST)."""
    require(is_int(input_dim) and input_dim >= 1, f"input_dim must be a whole number >= 1, got {input_dim!r}")


def check_dropout(dropout: Any) -> None:
    require(isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0, f"dropout must be in [0, 1), got {dropout!r}")


def check_size(num_parameters: int) -> None:
    """Refuse layer sizes beyond :data:`MAX_PARAMETERS`, computed before any memory is allocated for them."""
    require(
        num_parameters <= MAX_PARAMETERS,
        f"these layer sizes need {num_parameters:,} parameters, more than the {MAX_PARAMETERS:,} allowed",
    )
