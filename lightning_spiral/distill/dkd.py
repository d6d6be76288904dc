"""Decoupled knowledge distillation (Zhao et al. 2022, https://arxiv.org/abs/2203.08679).

KD's KL term splits into a target-class part (TCKD: binary [p_target, 1 - p_target]) and a
non-target part (NCKD: the distribution over the other classes). DKD weighs them separately:

    loss = ce_weight * CE(s, y) + alpha * T^2 * KL(b_t || b_s) + beta * T^2 * KL(q_t || q_s)

with ``b = [p_y, 1 - p_y]`` and ``q`` the softmax over the non-target classes, all at temperature
T; KL summed over classes and averaged over the batch. This follows the authors' reference code
(``mdistiller``), including masking the target logit by subtracting 1000 before the NCKD softmax;
the reference's linear warm-up of the DKD terms is left to a temperature/weight schedule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_spiral.checks import check_finite
from lightning_spiral.distill.base import DistillationLoss, check_temperature, temperature_value
from lightning_spiral.distill.temperature import Temperature


class DKDLoss(DistillationLoss):
    """Decoupled KD: target-class (TCKD) and non-target-class (NCKD) terms weighed by alpha and beta.

    Args:
        alpha: weight of TCKD (reference: 1.0).
        beta: weight of NCKD (reference: 8.0 on CIFAR-100).
        temperature: softmax temperature T (> 0), or a temperature module.
        ce_weight: weight of the hard-label cross-entropy (reference: 1.0).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.5, -1.0]])
        >>> round(DKDLoss(ce_weight=0.0)(logits, logits, torch.tensor([0])).item(), 4)
        0.0
    """

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: Temperature = 4.0, ce_weight: float = 1.0) -> None:
        super().__init__()
        hint = "DKD's reference weights are alpha=1, beta=8 (CIFAR-100) and ce_weight=1."
        self.alpha, self.beta, self.ce_weight = (check_finite(name, value, minimum=0, hint=hint) for name, value in
                                                 (("alpha", alpha), ("beta", beta), ("ce_weight", ce_weight)))
        self.temperature = check_temperature(temperature)

    def compute(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t, n = temperature_value(self.temperature), target.shape[0]
        gt_mask = F.one_hot(target, student_logits.shape[1]).bool()  # (N, C), True at the label
        p_s = F.softmax(student_logits / t, dim=1)
        p_t = F.softmax(teacher_logits / t, dim=1)
        # (N, 2): probability of the target class and of all the others
        b_s = torch.stack([(p_s * gt_mask).sum(1), (p_s * ~gt_mask).sum(1)], dim=1)
        b_t = torch.stack([(p_t * gt_mask).sum(1), (p_t * ~gt_mask).sum(1)], dim=1)
        tckd = F.kl_div(torch.log(b_s), b_t, reduction="sum") * t**2 / n
        log_q_s = F.log_softmax(student_logits / t - 1000.0 * gt_mask, dim=1)
        q_t = F.softmax(teacher_logits / t - 1000.0 * gt_mask, dim=1)
        nckd = F.kl_div(log_q_s, q_t, reduction="sum") * t**2 / n
        loss = self.alpha * tckd + self.beta * nckd
        if self.ce_weight:
            loss = loss + self.ce_weight * F.cross_entropy(student_logits, target)
        return loss

    def extra_repr(self) -> str:
        return f"{self.ce_weight} * CE + {self.alpha} * T^2 * TCKD + {self.beta} * T^2 * NCKD, T={self.temperature}"
