"""Relational knowledge distillation (Park et al. 2019, https://arxiv.org/abs/1904.05068).

Instead of matching outputs one sample at a time, RKD matches the *structure* of the batch:

- distance: pairwise Euclidean distances, each divided by the mean non-zero distance of its batch,
  compared with the smooth L1 (Huber) loss;
- angle: cosines of the angles formed by every triplet (e_i - e_j, e_k - e_j), smooth L1.

    loss = distance_weight * L_D + angle_weight * L_A      (paper: 25 and 50)

Embeddings are the tapped features flattened to (N, D) — or the logits when the path is ``None``.
Student and teacher may have different widths. The teacher side carries no gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_spiral.checks import check_finite
from lightning_spiral.distill.feature_base import FeatureLoss
from lightning_spiral.errors import SpiralConfigError


def pairwise_distances(embedding: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(N, D) -> (N, N) Euclidean distances with an exact zero diagonal."""
    squared = embedding.pow(2).sum(1)
    distances = (squared.unsqueeze(0) + squared.unsqueeze(1) - 2 * embedding @ embedding.t()).clamp(min=eps).sqrt()
    return distances * (1 - torch.eye(len(embedding), device=embedding.device))


def normalized_distances(embedding: torch.Tensor) -> torch.Tensor:
    distances = pairwise_distances(embedding)
    return distances / distances[distances > 0].mean()


def triplet_angles(embedding: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N*N*N,) cosines of the angle at j between e_i - e_j and e_k - e_j."""
    differences = F.normalize(embedding.unsqueeze(0) - embedding.unsqueeze(1), p=2, dim=2)  # (N, N, D)
    return torch.bmm(differences, differences.transpose(1, 2)).flatten()


class RKDLoss(FeatureLoss):
    """Distance- and angle-wise relational distillation on (flattened) features or logits.

    Args:
        student_path: module path of the student's embedding; ``None`` uses the logits.
        teacher_path: the teacher's path (defaults to ``student_path``).
        distance_weight: weight of the distance term (paper: 25).
        angle_weight: weight of the angle term (paper: 50).

    Example:
        >>> import torch
        >>> e = torch.randn(6, 5)
        >>> RKDLoss(None)(2.0 * e, e).item()  # relations are scale-free: a scaled copy matches exactly
        0.0
    """

    def __init__(self, student_path: str | None = None, teacher_path: str | None = None,
                 distance_weight: float = 25.0, angle_weight: float = 50.0) -> None:
        super().__init__(student_path, teacher_path)
        hint = "The paper's weights are distance_weight=25 and angle_weight=50."
        self.distance_weight = check_finite("distance_weight", distance_weight, minimum=0, hint=hint)
        self.angle_weight = check_finite("angle_weight", angle_weight, minimum=0, hint=hint)

    def compute(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
        if len(student_feature) < 3:
            raise SpiralConfigError(f"RKDLoss needs batches of at least 3 samples (angles use triplets), got {len(student_feature)}.")
        student, teacher = student_feature.flatten(1), teacher_feature.flatten(1).detach()
        loss = student.new_zeros(())
        if self.distance_weight:
            loss = loss + self.distance_weight * F.smooth_l1_loss(normalized_distances(student), normalized_distances(teacher))
        if self.angle_weight:
            loss = loss + self.angle_weight * F.smooth_l1_loss(triplet_angles(student), triplet_angles(teacher))
        return loss

    def extra_repr(self) -> str:
        return f"{self.distance_weight} * RKD-D + {self.angle_weight} * RKD-A on {self.student_path or 'logits'}"
