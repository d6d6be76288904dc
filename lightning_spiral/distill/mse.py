"""Logit matching by mean squared error (Ba & Caruana 2014, https://arxiv.org/abs/1312.6184).

    loss = (1 - alpha) * CE(s, y) + alpha * mean((s - t)^2)

The mean is over every logit of the batch (``N * C`` elements). With ``alpha=1`` it is pure logit
regression; lower ``alpha`` mixes in the hard-label cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_spiral.distill.base import DistillationLoss, check_alpha


class LogitMSELoss(DistillationLoss):
    """Mean squared error between student and teacher logits, optionally plus label CE.

    Args:
        alpha: weight of the MSE term in [0, 1]; ``1 - alpha`` weighs the label CE.

    Example:
        >>> import torch
        >>> loss = LogitMSELoss(alpha=1.0)
        >>> loss(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([1])).item()
        2.5
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = check_alpha(alpha)

    def compute(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mse = F.mse_loss(student_logits, teacher_logits)
        if self.alpha == 1.0:
            return mse
        return (1.0 - self.alpha) * F.cross_entropy(student_logits, target) + self.alpha * mse

    def extra_repr(self) -> str:
        return f"(1 - {self.alpha}) * CE + {self.alpha} * MSE(logits)"
