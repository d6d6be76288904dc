"""Importance criteria: which channels to remove. Each name maps to a torch-pruning estimator.

- ``"l1"`` / ``"l2"``: filter norm (Li et al. 2017, *Pruning Filters for Efficient ConvNets*,
  https://arxiv.org/abs/1608.08710), aggregated over every layer coupled in the dependency group.
- ``"bn_scale"``: the BatchNorm scale |gamma| of each channel (Liu et al. 2017, *Network Slimming*,
  https://arxiv.org/abs/1708.06519).
- ``"taylor"``: first-order Taylor expansion of the loss, |w * dL/dw| summed per channel (Molchanov
  et al. 2019, https://arxiv.org/abs/1906.10771). Needs gradients: the callback accumulates them
  over a few training batches *of the stage's own loss* (the distillation loss in a spiral).
- ``"fpgm"``: distance to the geometric median of the layer's filters — filters close to it are
  redundant (He et al. 2019, https://arxiv.org/abs/1811.00250).
- ``"random"``: uniform random scores, a baseline that any criterion should beat.

Example:
    >>> import torch_pruning as tp
    >>> isinstance(make_importance("l1"), tp.importance.Importance), make_importance("l2").p
    (True, 2)
    >>> needs_gradients("taylor"), needs_gradients("l1")
    (True, False)
"""

from __future__ import annotations

from typing import Literal, get_args

import torch_pruning as tp

from lightning_spiral.checks import check_choice

ImportanceName = Literal["l1", "l2", "bn_scale", "taylor", "fpgm", "random"]
IMPORTANCE_NAMES: tuple[str, ...] = get_args(ImportanceName)


def check_importance_name(name: str) -> str:
    """Return ``name`` if it is a known criterion, else raise naming the allowed ones."""
    return check_choice("importance", name, IMPORTANCE_NAMES)


def needs_gradients(name: ImportanceName) -> bool:
    """Whether the criterion reads ``.grad`` of the weights (accumulated before pruning)."""
    return check_importance_name(name) == "taylor"


def make_importance(name: ImportanceName) -> tp.importance.Importance:
    """Build the torch-pruning importance estimator called ``name``."""
    check_importance_name(name)
    if name == "random":
        return tp.importance.RandomImportance()
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    if name == "taylor":
        return tp.importance.TaylorImportance()
    if name == "fpgm":
        return tp.importance.FPGMImportance()
    return tp.importance.MagnitudeImportance(p=1 if name == "l1" else 2)
