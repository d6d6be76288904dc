"""Hinton knowledge distillation (Hinton, Vinyals & Dean 2015, https://arxiv.org/abs/1503.02531).

    loss = (1 - alpha) * CE(s, y) + alpha * T^2 * KL(softmax(t / T) || softmax(s / T))

The KL term uses ``reduction="batchmean"`` (the true KL divergence per sample, averaged over the
batch) and is multiplied by T^2 so its gradient scale does not shrink as T grows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_spiral.distill.base import DistillationLoss, check_alpha, check_temperature, temperature_value
from lightning_spiral.distill.temperature import Temperature


class KDLoss(DistillationLoss):
    """Hinton KD: hard-label cross-entropy mixed with temperature-softened teacher matching.

    Args:
        temperature: softmax temperature ``T`` (> 0), or a :class:`ScheduledTemperature` /
            :class:`CurriculumTemperature` module.
        alpha: weight of the distillation term in [0, 1]; ``1 - alpha`` weighs the label CE.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.5, -1.0]])
        >>> KDLoss(temperature=4.0, alpha=1.0)(logits, logits, torch.tensor([0])).item()
        0.0
    """

    def __init__(self, temperature: Temperature = 4.0, alpha: float = 0.9) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.alpha = check_alpha(alpha)

    def compute(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = temperature_value(self.temperature)
        # (N, C) log-probabilities at temperature T; KL(p_t || p_s) = sum p_t (log p_t - log p_s)
        kl = F.kl_div(
            F.log_softmax(student_logits / t, dim=1),
            F.log_softmax(teacher_logits / t, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        ce = F.cross_entropy(student_logits, target)
        return (1.0 - self.alpha) * ce + self.alpha * t * t * kl

    def extra_repr(self) -> str:
        return f"(1 - {self.alpha}) * CE + {self.alpha} * T^2 * KL, T={self.temperature}"
