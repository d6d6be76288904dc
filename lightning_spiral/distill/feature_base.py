"""The common shape of feature distillation losses: ``loss(student_feature, teacher_feature)``.

A feature loss names the module paths it reads (``student_path``, ``teacher_path``; ``None`` means
the logits) and receives those tensors, cast to float32 outside autocast. Losses with learnable
parts (FitNets' adapter) build them in :meth:`FeatureLoss.prepare`, called with real features at
the start of every fit, because pruning changes the student's widths between stages.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class FeatureLoss(nn.Module):
    """Base class of feature distillation losses.

    Args:
        student_path: module path of the student's feature (``"layer3"``, ``"features.10:input"``),
            ``None`` for the logits.
        teacher_path: the teacher's path; defaults to ``student_path`` (pruning keeps paths).

    Example:
        >>> class MeanFeatureMSE(FeatureLoss):
        ...     def compute(self, student_feature, teacher_feature):
        ...         return (student_feature.mean(1) - teacher_feature.mean(1)).pow(2).mean()
        >>> loss = MeanFeatureMSE("layer3")
        >>> loss.teacher_path, loss(torch.ones(2, 8, 4, 4), torch.zeros(2, 16, 4, 4)).item()
        ('layer3', 1.0)
    """

    def __init__(self, student_path: str | None, teacher_path: str | None = None) -> None:
        super().__init__()
        self.student_path = student_path
        self.teacher_path = student_path if teacher_path is None else teacher_path

    def prepare(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> None:
        """Build learnable parts from observed shapes (called once per fit); nothing by default."""

    def forward(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=student_feature.device.type, enabled=False):
            return self.compute(student_feature.float(), teacher_feature.float())

    def compute(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement `compute(student_feature, teacher_feature)`.")
