"""Distillation temperature: a constant, a schedule over epochs, or learned within bounds.

- :class:`ScheduledTemperature` — linear or cosine from ``start`` to ``end`` over ``epochs``.
- :class:`CurriculumTemperature` — Curriculum Temperature KD (Li et al. 2023,
  https://arxiv.org/abs/2211.16231): a learnable temperature, kept in ``[low, high]`` by a
  sigmoid, trained *adversarially* through a gradient reversal whose strength ``lambda`` rises
  along a cosine from 0 to ``lambda_max`` — the task gets harder (the temperature maximises the
  distillation loss) as training progresses.

Losses take ``temperature`` as a float or one of these modules; the SpiralModule calls
``set_epoch(epoch)`` on schedules at the start of every training epoch.

Example:
    >>> schedule = ScheduledTemperature(start=8.0, end=2.0, epochs=4, kind="linear")
    >>> [schedule.set_epoch(e) or round(schedule().item(), 2) for e in range(5)]
    [8.0, 6.0, 4.0, 2.0, 2.0]
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn

from lightning_spiral.checks import check_choice, check_finite, check_int, check_positive, refuse

TEMPERATURE_HINT = "Typical temperatures are 1-8."


class ScheduledTemperature(nn.Module):
    """Temperature moving from ``start`` to ``end`` over ``epochs`` epochs, then staying at ``end``."""

    def __init__(self, start: float, end: float, epochs: int, kind: Literal["linear", "cosine"] = "cosine") -> None:
        super().__init__()
        self.start = check_positive("start", start, hint=TEMPERATURE_HINT)
        self.end = check_positive("end", end, hint=TEMPERATURE_HINT)
        self.epochs = check_int("epochs", epochs, 2, hint="A schedule needs a first and a last epoch.")
        self.kind = check_choice("kind", kind, ("linear", "cosine"))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def forward(self) -> torch.Tensor:
        progress = min(self.epoch / (self.epochs - 1), 1.0)
        if self.kind == "cosine":
            progress = (1 - math.cos(math.pi * progress)) / 2
        return torch.tensor(self.start + (self.end - self.start) * progress)

    def extra_repr(self) -> str:
        return f"{self.kind} {self.start} -> {self.end} over {self.epochs} epochs"


def check_bounds(low: float, high: float) -> tuple[float, float]:
    """Validate the bounds of a learned temperature: finite, ``0 < low < high``."""
    low = check_positive("low", low, hint=TEMPERATURE_HINT)
    high = check_positive("high", high, hint=TEMPERATURE_HINT)
    if not low < high:
        raise refuse("high", high, f"a number > `low`={low!r}")
    return low, high


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, strength: float) -> torch.Tensor:  # type: ignore[override]
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.strength * grad, None


class CurriculumTemperature(nn.Module):
    """A learnable temperature in ``[low, high]``, trained against the student (CTKD).

    Args:
        initial: starting temperature, strictly between ``low`` and ``high``.
        low, high: bounds of the temperature.
        lambda_max: final strength of the reversed gradient.
        epochs: epochs over which lambda rises (cosine) from 0 to ``lambda_max``.

    Example:
        >>> temperature = CurriculumTemperature(initial=4.0, low=1.0, high=10.0, epochs=4)
        >>> round(temperature().item(), 4), temperature.strength
        (4.0, 0.0)
        >>> temperature.set_epoch(2)  # halfway up the cosine ramp
        >>> round(temperature.strength, 6)
        0.5
    """

    def __init__(self, initial: float = 4.0, low: float = 1.0, high: float = 10.0, lambda_max: float = 1.0, epochs: int = 10) -> None:
        super().__init__()
        self.low, self.high = check_bounds(low, high)
        initial = check_finite("initial", initial)
        if not self.low < initial < self.high:
            raise refuse("initial", initial, f"a number strictly between `low`={low!r} and `high`={high!r}")
        self.lambda_max = check_positive("lambda_max", lambda_max,
                                         hint="It is the final strength of the reversed gradient, e.g. 1.0.")
        self.epochs = check_int("epochs", epochs, 1, hint="Lambda rises from 0 to `lambda_max` over these epochs.")
        fraction = (initial - self.low) / (self.high - self.low)
        self.raw = nn.Parameter(torch.tensor(math.log(fraction / (1 - fraction))))  # inverse sigmoid
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def strength(self) -> float:
        """Current lambda of the gradient reversal (cosine ramp from 0 to ``lambda_max``)."""
        progress = min(self.epoch / self.epochs, 1.0)
        return self.lambda_max * (1 - math.cos(math.pi * progress)) / 2

    def forward(self) -> torch.Tensor:
        raw = _ReverseGradient.apply(self.raw, self.strength)
        return self.low + (self.high - self.low) * torch.sigmoid(raw)

    def extra_repr(self) -> str:
        return f"learned in [{self.low}, {self.high}], lambda -> {self.lambda_max} over {self.epochs} epochs"


Temperature = float | ScheduledTemperature | CurriculumTemperature
