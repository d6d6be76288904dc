"""Hard-label cross-entropy as a distillation term, so ``WeightedSum`` can write ``CE + KD + AT``.

    loss = CE(s, y)      (the teacher's logits are ignored)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_spiral.distill.base import DistillationLoss


class LabelCrossEntropy(DistillationLoss):
    """Cross-entropy of the student's logits against the labels (the teacher is not used).

    Example:
        >>> import torch
        >>> round(LabelCrossEntropy()(torch.zeros(1, 4), torch.zeros(1, 4), torch.tensor([2])).item(), 4)
        1.3863
    """

    def compute(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(student_logits, target)

    def extra_repr(self) -> str:
        return "CE(student, labels)"
