"""Output matching by mean squared error (Ba & Caruana 2014, https://arxiv.org/abs/1312.6184).

    loss = (1 - alpha) * CE(s, y) + alpha * mean((s - t)^2)

The mean is over every element of the batch's outputs, whatever their shape: ``(N, C)`` logits,
``(N, 1)`` regression, ``(N, 3, H, W)`` segmentation maps, ``(N, 64)`` reconstructions. With
``alpha=1`` it is pure output regression and needs no labels (``target`` may be ``None`` or a float
tensor); lower ``alpha`` mixes in the hard-label cross-entropy, which needs labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_spiral.distill.base import DistillationLoss, check_alpha
from lightning_spiral.errors import SpiralConfigError


class LogitMSELoss(DistillationLoss):
    """Mean squared error between student and teacher outputs, optionally plus label CE.

    Args:
        alpha: weight of the MSE term in [0, 1]; ``1 - alpha`` weighs the label CE.

    Example:
        >>> import torch
        >>> loss = LogitMSELoss(alpha=1.0)
        >>> loss(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([1])).item()
        2.5
        >>> loss(torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), None).item()  # a segmentation map, no labels
        1.0
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = check_alpha(alpha)

    def compute(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        mse = F.mse_loss(student_logits, teacher_logits)
        if self.alpha == 1.0:
            return mse
        if target is None:
            raise SpiralConfigError(
                f"`alpha`={self.alpha} mixes in label cross-entropy, which needs labels as `target`, got None. "
                "Use `alpha=1.0` for outputs without classes (regression, segmentation, reconstruction)."
            )
        return (1.0 - self.alpha) * F.cross_entropy(student_logits, target) + self.alpha * mse

    def extra_repr(self) -> str:
        return f"(1 - {self.alpha}) * CE + {self.alpha} * MSE(outputs)"
