"""Argument checks shared by the spiral driver: each raises before any work, naming the value."""

from __future__ import annotations

from collections.abc import Sequence

from lightning_spiral.errors import SpiralConfigError


def check_fraction(name: str, value: float, open_low: bool = False) -> float:
    """``value`` in [0, 1] (or (0, 1] with ``open_low``)."""
    low_ok = value > 0 if open_low else value >= 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low_ok and value <= 1):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise SpiralConfigError(f"`{name}` must be a fraction in {interval}, got {value!r}.")
    return float(value)


def check_positive_int(name: str, value: int) -> int:
    """``value`` an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpiralConfigError(f"`{name}` must be an integer >= 1, got {value!r}.")
    return value


def check_stage_epochs(stage_epochs: int | Sequence[int], max_stages: int) -> list[int]:
    """One epoch count per stage: an int is repeated, a list must have ``max_stages`` entries."""
    if isinstance(stage_epochs, int) and not isinstance(stage_epochs, bool):
        return [check_positive_int("stage_epochs", stage_epochs)] * max_stages
    epochs = list(stage_epochs)
    if len(epochs) != max_stages:
        raise SpiralConfigError(
            f"`stage_epochs` must be one integer or a list of `max_stages`={max_stages} integers, got {epochs!r}."
        )
    return [check_positive_int("stage_epochs", e) for e in epochs]
