"""Importance criteria: which channels to remove. Each name maps to a torch-pruning estimator.

- ``"l1"`` / ``"l2"``: filter norm (Li et al. 2017, *Pruning Filters for Efficient ConvNets*,
  https://arxiv.org/abs/1608.08710), aggregated over every layer coupled in the dependency group.
- ``"random"``: uniform random scores, a baseline that any criterion should beat.

Example:
    >>> type(make_importance("l1")).__name__
    'GroupMagnitudeImportance'
"""

from __future__ import annotations

from typing import Literal, get_args

import torch_pruning as tp

from lightning_spiral.errors import SpiralConfigError

ImportanceName = Literal["l1", "l2", "random"]
IMPORTANCE_NAMES: tuple[str, ...] = get_args(ImportanceName)


def check_importance_name(name: str) -> str:
    """Return ``name`` if it is a known criterion, else raise naming the allowed ones."""
    if name not in IMPORTANCE_NAMES:
        raise SpiralConfigError(f"`importance` must be one of {list(IMPORTANCE_NAMES)}, got {name!r}.")
    return name


def make_importance(name: ImportanceName) -> tp.importance.Importance:
    """Build the torch-pruning importance estimator called ``name``."""
    check_importance_name(name)
    if name == "random":
        return tp.importance.RandomImportance()
    return tp.importance.MagnitudeImportance(p=1 if name == "l1" else 2)
