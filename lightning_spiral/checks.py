"""The one module of argument checks: one rule, one wording, used by every constructor and the CLI.

Each check returns the value (converted where the rule implies it: ``float`` for numbers) or
raises :class:`~lightning_spiral.errors.SpiralConfigError` with one line naming the argument in
backticks, the value received and what is allowed; ``hint`` is appended to say what to do.
``none_ok=True`` lets ``None`` through unchanged (an optional argument left unset).

Wordings:

- integers: "`epochs` must be an integer >= 1, got 1.5."
- numbers: "`lr` must be a finite number > 0, got -1." / "`amount` must be a number in [0, 1), got 2."
- choices: "`mode` must be one of ['min', 'max'], got 'up'."
- flags: "`augment` must be True or False, got 'yes'."

Example:
    >>> from lightning_spiral.checks import check_int, check_interval, check_positive
    >>> check_int("max_stages", 3, minimum=1)
    3
    >>> check_interval("amount", 0.25, "[0, 1)")
    0.25
    >>> check_positive("lr", -1)
    Traceback (most recent call last):
      ...
    lightning_spiral.errors.SpiralConfigError: `lr` must be a finite number > 0, got -1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypeVar

from lightning_spiral.errors import SpiralConfigError

T = TypeVar("T")


def refuse(name: str, value: Any, allowed: str, hint: str = "") -> SpiralConfigError:
    """The one-line error of every check: "`name` must be <allowed>, got <value>. <hint>"."""
    return SpiralConfigError(f"`{name}` must be {allowed}, got {value!r}.{' ' + hint if hint else ''}")


def is_integer(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (``True`` is not a stage count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int = 0, *, none_ok: bool = False, hint: str = "") -> Any:
    """An integer ``>= minimum``."""
    if value is None and none_ok:
        return None
    if not is_integer(value) or value < minimum:
        raise refuse(name, value, f"an integer >= {minimum}", hint)
    return value


def check_positive(name: str, value: Any, *, none_ok: bool = False, hint: str = "") -> Any:
    """A finite number > 0, as a ``float``."""
    if value is None and none_ok:
        return None
    if not is_number(value) or not (math.isfinite(value) and value > 0):
        raise refuse(name, value, "a finite number > 0", hint)
    return float(value)


def check_finite(name: str, value: Any, *, minimum: float | None = None, none_ok: bool = False, hint: str = "") -> Any:
    """A finite number (``>= minimum`` when given), as a ``float``."""
    if value is None and none_ok:
        return None
    if not is_number(value) or not math.isfinite(value) or (minimum is not None and value < minimum):
        raise refuse(name, value, "a finite number" + ("" if minimum is None else f" >= {minimum:g}"), hint)
    return float(value)


def check_interval(name: str, value: Any, interval: str = "[0, 1]", *, none_ok: bool = False, hint: str = "") -> Any:
    """A number in ``interval``, written as in mathematics: ``"[0, 1]"``, ``"(0, 1]"``, ``"[0, 1)"``, ``"(0, 1)"``."""
    if value is None and none_ok:
        return None
    if not (is_number(value) and math.isfinite(value) and in_interval(value, interval)):
        raise refuse(name, value, f"a number in {interval}", hint)
    return float(value)


def in_interval(value: float, interval: str) -> bool:
    """Whether the number ``value`` lies in ``interval`` (``"(0, 1]"``: open below, closed above)."""
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    above = value > low if interval[0] == "(" else value >= low
    below = value < high if interval[-1] == ")" else value <= high
    return above and below


def check_choice(name: str, value: T, allowed: Iterable[T], *, hint: str = "") -> T:
    """One of ``allowed``."""
    options = list(allowed)
    if not any(value == option and type(value) is type(option) for option in options):
        raise refuse(name, value, f"one of {options}", hint)
    return value


def check_bool(name: str, value: Any, *, hint: str = "") -> bool:
    """``True`` or ``False`` (not ``"yes"``, not 1)."""
    if not isinstance(value, bool):
        raise refuse(name, value, "True or False", hint)
    return value


__all__ = ["check_bool", "check_choice", "check_finite", "check_int", "check_interval", "check_positive",
           "is_integer", "is_number", "refuse"]
