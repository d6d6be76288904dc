"""Distillation losses: every one is called as ``loss(student_logits, teacher_logits, target)``."""

from lightning_spiral.distill.base import DistillationLoss
from lightning_spiral.distill.kd import KDLoss
from lightning_spiral.distill.mse import LogitMSELoss

__all__ = ["DistillationLoss", "KDLoss", "LogitMSELoss"]
