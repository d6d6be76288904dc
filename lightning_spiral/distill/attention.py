"""Attention transfer (Zagoruyko & Komodakis 2017, https://arxiv.org/abs/1612.03928).

The spatial attention map of a (N, C, H, W) feature is the channel mean of its squared
activations, flattened and L2-normalised per sample; the loss is the mean squared difference of
the student's and the teacher's maps (the authors' ``at_loss``; the paper's beta = 1000 is the
term's weight in :class:`~lightning_spiral.distill.WeightedSum`):

    a(F) = normalize(mean_c F_c^2)          (N, H*W)
    loss = mean((a(F_s) - a(F_t))^2)

Channel counts may differ (the map averages them out), so it needs no adapter after pruning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_spiral.distill.feature_base import FeatureLoss
from lightning_spiral.errors import SpiralConfigError


def attention_map(feature: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H*W): L2-normalised channel mean of the squared activations."""
    return F.normalize(feature.pow(2).mean(1).flatten(1), dim=1)


class AttentionTransferLoss(FeatureLoss):
    """Match spatial attention maps of student and teacher features.

    Example:
        >>> import torch
        >>> f = torch.randn(2, 8, 4, 4)
        >>> round(AttentionTransferLoss("layer2")(f, torch.cat([f, f], dim=1)).item(), 9)  # same map, wider teacher
        0.0
    """

    def compute(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
        if student_feature.dim() != 4 or student_feature.shape[2:] != teacher_feature.shape[2:]:
            raise SpiralConfigError(
                f"AttentionTransferLoss needs (N, C, H, W) features with the same H, W; got student "
                f"{tuple(student_feature.shape)} at {self.student_path!r}, teacher {tuple(teacher_feature.shape)}."
            )
        return (attention_map(student_feature) - attention_map(teacher_feature)).pow(2).mean()

    def extra_repr(self) -> str:
        return f"AT(student[{self.student_path}], teacher[{self.teacher_path}])"
