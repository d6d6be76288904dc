"""The validation metric that judges a stage: which key, which direction is better, how much may be lost.

The spiral keeps a stage when its monitored validation value lies within ``max_drop`` of the
teacher's. ``mode="max"`` for accuracies (``val_acc``, ``val/top1``), ``mode="min"`` for losses and
errors (``val_loss``). The drop is absolute (``0.02`` = 2 points of an accuracy fraction) or, with
``relative=True``, a fraction of the teacher's value (``0.1`` = a loss at most 10% above the
teacher's), which is what a loss of arbitrary scale needs.

Example:
    >>> monitor = Monitor("val_loss", mode="min", max_drop=0.1, relative=True)
    >>> round(monitor.drop(teacher=0.50, value=0.54), 3), monitor.within(teacher=0.50, value=0.54)
    (0.08, True)
    >>> Monitor("val_acc", max_drop=0.02).within(teacher=0.90, value=0.87)
    False
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from lightning_spiral.checks import check_bool, check_choice, check_finite
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.spiral.settings import DEFAULT_MAX_DROP

MonitorMode = Literal["min", "max"]

#: What the built-in :class:`~lightning_spiral.SpiralModule` logs and the spiral judges by default.
BUILTIN_KEY = "val/top1"


@dataclasses.dataclass(frozen=True)
class Monitor:
    """A validation metric logged by the module, its better direction and the allowed fall.

    Args:
        key: the name the module logs in ``validation_step`` (``self.log("val_acc", ...)``).
        mode: ``"max"`` when larger is better (accuracy), ``"min"`` when smaller is (loss).
        max_drop: the largest allowed worsening against the teacher, >= 0.
        relative: ``max_drop`` is a fraction of the teacher's value instead of an absolute amount.
    """

    key: str
    mode: MonitorMode = "max"
    max_drop: float = DEFAULT_MAX_DROP
    relative: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise SpiralConfigError(f"`monitor.key` must be the non-empty name of a logged metric, got {self.key!r}.")
        check_choice("monitor.mode", self.mode, ("min", "max"))
        object.__setattr__(self, "max_drop", check_finite("monitor.max_drop", self.max_drop, minimum=0))
        check_bool("monitor.relative", self.relative)

    def drop(self, teacher: float, value: float) -> float:
        """How much worse ``value`` is than the teacher's (negative: better), in the unit of ``max_drop``."""
        worse = teacher - value if self.mode == "max" else value - teacher
        return worse / abs(teacher) if self.relative and teacher != 0 else worse

    def within(self, teacher: float, value: float) -> bool:
        """Whether ``value`` keeps the stage: not worse than the teacher's by more than ``max_drop``."""
        return math.isfinite(value) and self.drop(teacher, value) <= self.max_drop

    def describe_drop(self, teacher: float, value: float) -> str:
        """``"0.0312 worse"`` / ``"3.12% worse"`` for messages."""
        drop = self.drop(teacher, value)
        return f"{drop:.2%} worse" if self.relative or self.key == BUILTIN_KEY else f"{drop:.4g} worse"

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as recorded in ``report.json``."""
        return dataclasses.asdict(self)


def as_monitor(monitor: Monitor | str | dict | None, max_accuracy_drop: float | None) -> Monitor:
    """The run's :class:`Monitor`: given whole, or a key judged with ``mode='max'`` and ``max_accuracy_drop``.

    ``None`` means the built-in module's ``val/top1``. ``max_accuracy_drop`` only applies to those
    two forms; with a whole monitor it must be left unset.

    Example:
        >>> as_monitor(None, 0.05)
        Monitor(key='val/top1', mode='max', max_drop=0.05, relative=False)
    """
    if isinstance(monitor, dict):
        monitor = Monitor(**monitor)
    if isinstance(monitor, Monitor):
        if max_accuracy_drop is not None:
            raise SpiralConfigError(
                f"`max_accuracy_drop`={max_accuracy_drop!r} and `monitor`={monitor!r} both set the allowed drop; "
                "set it once, as `monitor.max_drop` (config: `spiral.max_accuracy_drop=null`)."
            )
        return monitor
    if monitor is not None and not isinstance(monitor, str):
        raise SpiralConfigError(
            f"`monitor` must be a Monitor, a metric key (str) or None (the built-in 'val/top1'), got {monitor!r}."
        )
    return Monitor(monitor or BUILTIN_KEY, mode="max", max_drop=DEFAULT_MAX_DROP if max_accuracy_drop is None else max_accuracy_drop)
