"""FitNets hints (Romero et al. 2015, https://arxiv.org/abs/1412.6550).

    loss = mean((r(f_s) - f_t)^2)

``r`` is a learnable adapter mapping the student's feature width to the teacher's: a 1x1
convolution for (N, C, H, W) features, a linear layer for (N, C). It is built from the observed
shapes at the start of every fit (a pruned student is narrower each stage), trained with the
student (it is part of the loss module, so it is in the optimizer) and never saved with the student.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_spiral.distill.feature_base import FeatureLoss
from lightning_spiral.errors import SpiralConfigError


class FitNetLoss(FeatureLoss):
    """MSE between the adapted student feature and the teacher feature at the same (or a given) path.

    Example:
        >>> import torch
        >>> loss = FitNetLoss("layer3")
        >>> s, t = torch.randn(2, 8, 4, 4), torch.randn(2, 16, 4, 4)
        >>> loss.prepare(s, t)
        >>> loss.adapter
        Conv2d(8, 16, kernel_size=(1, 1), stride=(1, 1), bias=False)
        >>> loss(s, t).shape
        torch.Size([])
    """

    def __init__(self, student_path: str, teacher_path: str | None = None) -> None:
        super().__init__(student_path, teacher_path)
        self.adapter: nn.Module = nn.Identity()

    def prepare(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> None:
        s, t = student_feature.shape, teacher_feature.shape
        if s[0] != t[0] or s[2:] != t[2:] or len(s) not in (2, 4):
            raise SpiralConfigError(
                f"FitNetLoss needs (N, C) or (N, C, H, W) features with equal N, H, W; got student {tuple(s)} at "
                f"{self.student_path!r} and teacher {tuple(t)} at {self.teacher_path!r}."
            )
        if len(s) == 4:
            self.adapter = nn.Conv2d(s[1], t[1], kernel_size=1, bias=False)
        else:
            self.adapter = nn.Linear(s[1], t[1], bias=False)
        self.adapter.to(student_feature.device)

    def compute(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.adapter(student_feature), teacher_feature)

    def extra_repr(self) -> str:
        return f"MSE(adapter(student[{self.student_path}]), teacher[{self.teacher_path}])"
