"""The common shape of every logit distillation loss: ``loss(student_logits, teacher_logits, target)``.

Losses are computed in float32 even under ``torch.autocast`` (bf16/fp16 mixed precision): a softmax
at temperature T over half-precision logits loses the small probabilities that carry the "dark
knowledge", and a KL divergence in bf16 is visibly biased.

Example:
    >>> import torch
    >>> from lightning_spiral.distill import KDLoss
    >>> loss = KDLoss(temperature=4.0, alpha=0.9)
    >>> value = loss(torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,)))
    >>> value.dtype
    torch.float32
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lightning_spiral.checks import check_interval, check_positive
from lightning_spiral.distill.temperature import TEMPERATURE_HINT
from lightning_spiral.errors import SpiralConfigError


def freeze_teacher(teacher: nn.Module) -> nn.Module:
    """The one place a teacher is frozen: eval mode (frozen BatchNorm, no dropout) and no gradients."""
    return teacher.eval().requires_grad_(False)


def check_alpha(alpha: float) -> float:
    """Validate a mixing weight between the hard-label and the distillation term."""
    return check_interval("alpha", alpha, "[0, 1]", hint="0 = labels only, 1 = teacher only.")


def check_temperature(temperature: "float | nn.Module") -> "float | nn.Module":
    """Validate a softmax temperature: a finite number > 0, or a temperature module (schedule, learned)."""
    if isinstance(temperature, nn.Module):
        return temperature
    hint = f"{TEMPERATURE_HINT} A ScheduledTemperature or CurriculumTemperature module also works."
    return check_positive("temperature", temperature, hint=hint)


def temperature_value(temperature: "float | nn.Module") -> "float | torch.Tensor":
    """The temperature to use now: the number, or the module's current value."""
    return temperature() if isinstance(temperature, nn.Module) else temperature


class DistillationLoss(nn.Module):
    """Base class: checks shapes, casts to float32 outside autocast, then calls :meth:`compute`.

    Subclasses implement ``compute(student_logits, teacher_logits, target)`` on float32 tensors of
    shape ``(N, C)`` (logits) and ``(N,)`` (class indices) and return a scalar.

    Example:
        >>> class LogitL1(DistillationLoss):
        ...     def compute(self, student_logits, teacher_logits, target):
        ...         return (student_logits - teacher_logits).abs().mean()
        >>> LogitL1()(torch.ones(2, 3, dtype=torch.bfloat16), torch.zeros(2, 3), torch.tensor([0, 1]))
        tensor(1.)
    """

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if student_logits.shape != teacher_logits.shape:
            raise SpiralConfigError(
                f"Student and teacher outputs must have the same shape, got student {tuple(student_logits.shape)} "
                f"and teacher {tuple(teacher_logits.shape)}. Do both networks end in the same head (same `num_classes` "
                "or output size)? For networks returning several outputs, pick the tensor with `outputs=`."
            )
        with torch.autocast(device_type=student_logits.device.type, enabled=False):
            return self.compute(student_logits.float(), teacher_logits.float(), target)

    def compute(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement `compute(student_logits, teacher_logits, target)`.")
