"""Weighted sums of named distillation terms, and the one function that evaluates any loss.

``WeightedSum(weights={"ce": 0.1, "kd": 0.9, "at": 1000.0}, losses={...})`` reads as its ``repr``:
``0.1 * ce + 0.9 * kd + 1000.0 * at``. Logit terms (:class:`DistillationLoss`) are called with
``(student_logits, teacher_logits, target)``; feature terms (:class:`FeatureLoss`) with the tapped
features at their paths. :func:`distillation_terms` returns every term's unweighted value, so the
module can log ``train/loss/kd``, ``train/loss/at``, ... next to the total.

Example:
    >>> from lightning_spiral.distill import KDLoss, LabelCrossEntropy
    >>> WeightedSum(weights={"ce": 0.1, "kd": 0.9}, losses={"ce": LabelCrossEntropy(), "kd": KDLoss(alpha=1.0)})
    WeightedSum(0.1 * ce + 0.9 * kd)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
import torch.nn as nn

from lightning_spiral.checks import check_finite
from lightning_spiral.distill.base import DistillationLoss
from lightning_spiral.distill.feature_base import FeatureLoss
from lightning_spiral.errors import SpiralConfigError


@dataclasses.dataclass
class DistillationInputs:
    """Everything a distillation term may read for one batch.

    ``student_logits`` / ``teacher_logits`` are the selected network outputs: ``(N, C)`` logits for
    classification, any shape for task-agnostic losses (``LogitMSELoss``); ``target`` is ``(N,)``
    class indices, a float tensor, or ``None`` when no term reads labels.
    """

    student_logits: torch.Tensor  # (N, C) or (N, ...)
    teacher_logits: torch.Tensor  # same shape as the student's
    target: torch.Tensor | None  # (N,) class indices, float targets, or None
    student_features: dict[str, torch.Tensor]
    teacher_features: dict[str, torch.Tensor]


class WeightedSum(nn.Module):
    """``sum_k weights[k] * losses[k]`` over named logit and feature terms.

    Args:
        weights: weight of every term, by name (>= 0).
        losses: the term modules, by the same names.
    """

    def __init__(self, weights: Mapping[str, float], losses: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if set(weights) != set(losses) or not weights:
            raise SpiralConfigError(
                f"`weights` and `losses` must name the same non-empty set of terms, got weights {sorted(weights)} "
                f"and losses {sorted(losses)}."
            )
        for name, loss in losses.items():
            if not isinstance(loss, (DistillationLoss, FeatureLoss)):
                raise SpiralConfigError(
                    f"Term {name!r} must be a DistillationLoss or a FeatureLoss, got {type(loss).__name__}."
                )
        self.weights = {name: check_finite(f"weights[{name!r}]", weights[name], minimum=0) for name in losses}
        self.losses = nn.ModuleDict(dict(losses))

    def extra_repr(self) -> str:
        return " + ".join(f"{weight} * {name}" for name, weight in self.weights.items())

    def __repr__(self) -> str:
        return f"WeightedSum({self.extra_repr()})"


def loss_terms(loss: nn.Module) -> dict[str, tuple[float, nn.Module]]:
    """``{name: (weight, term)}`` of any distillation loss (a single loss is one term of weight 1)."""
    if isinstance(loss, WeightedSum):
        return {name: (loss.weights[name], term) for name, term in loss.losses.items()}
    if isinstance(loss, (DistillationLoss, FeatureLoss)):
        return {"distill": (1.0, loss)}
    raise SpiralConfigError(
        f"`loss` must be a DistillationLoss (KDLoss, DKDLoss, LogitMSELoss, ...), a FeatureLoss (FitNetLoss, "
        f"AttentionTransferLoss, RKDLoss) or a WeightedSum of them, got {type(loss).__name__}."
    )


def feature_paths(loss: nn.Module) -> tuple[list[str], list[str]]:
    """Module paths the loss reads from the student and from the teacher.

    Example:
        >>> from lightning_spiral.distill import AttentionTransferLoss, KDLoss
        >>> feature_paths(WeightedSum({"kd": 0.9, "at": 1000.0}, {"kd": KDLoss(), "at": AttentionTransferLoss("layer3")}))
        (['layer3'], ['layer3'])
    """
    terms = [term for _, term in loss_terms(loss).values() if isinstance(term, FeatureLoss)]
    student = [t.student_path for t in terms if t.student_path is not None]
    teacher = [t.teacher_path for t in terms if t.teacher_path is not None]
    return list(dict.fromkeys(student)), list(dict.fromkeys(teacher))


def _feature_pair(term: FeatureLoss, inputs: DistillationInputs) -> tuple[torch.Tensor, torch.Tensor]:
    student = inputs.student_logits if term.student_path is None else inputs.student_features[term.student_path]
    teacher = inputs.teacher_logits if term.teacher_path is None else inputs.teacher_features[term.teacher_path]
    return student, teacher


def prepare_terms(loss: nn.Module, inputs: DistillationInputs) -> None:
    """Let feature terms build learnable parts (adapters) from the observed shapes."""
    for _, term in loss_terms(loss).values():
        if isinstance(term, FeatureLoss):
            term.prepare(*_feature_pair(term, inputs))


def distillation_terms(loss: nn.Module, inputs: DistillationInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted total and every term's unweighted value.

    Example:
        >>> from lightning_spiral.distill import LabelCrossEntropy, LogitMSELoss
        >>> logits = torch.zeros(2, 4)
        >>> inputs = DistillationInputs(logits, logits + 1.0, torch.tensor([0, 1]), {}, {})
        >>> total, terms = distillation_terms(WeightedSum({"ce": 0.5, "mse": 2.0}, {"ce": LabelCrossEntropy(), "mse": LogitMSELoss()}), inputs)
        >>> round(total.item(), 4), {name: round(value.item(), 4) for name, value in terms.items()}
        (2.6931, {'ce': 1.3863, 'mse': 1.0})
    """
    values: dict[str, torch.Tensor] = {}
    total = inputs.student_logits.new_zeros((), dtype=torch.float32)
    for name, (weight, term) in loss_terms(loss).items():
        if isinstance(term, FeatureLoss):
            values[name] = term(*_feature_pair(term, inputs))
        else:
            values[name] = term(inputs.student_logits, inputs.teacher_logits, inputs.target)
        total = total + weight * values[name]
    return total, values
