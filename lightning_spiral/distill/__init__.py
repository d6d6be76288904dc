"""Distillation losses.

Logit losses are called as ``loss(student_logits, teacher_logits, target)``; feature losses as
``loss(student_feature, teacher_feature)`` with the features tapped at their module paths;
:class:`WeightedSum` combines named terms of both kinds. :class:`Distiller` is the one engine
(frozen teacher, feature taps, teacher cache, output selection, float32 math) behind both
:class:`~lightning_spiral.SpiralModule` and :class:`DistillationCallback`, which adds any of these
losses to a LightningModule's own training step.
"""

from lightning_spiral.distill.attention import AttentionTransferLoss
from lightning_spiral.distill.base import DistillationLoss
from lightning_spiral.distill.callback import DistillationCallback
from lightning_spiral.distill.ce import LabelCrossEntropy
from lightning_spiral.distill.combine import DistillationInputs, WeightedSum, distillation_terms, feature_paths
from lightning_spiral.distill.dkd import DKDLoss
from lightning_spiral.distill.engine import Distiller, select_output
from lightning_spiral.distill.feature_base import FeatureLoss
from lightning_spiral.distill.fitnet import FitNetLoss
from lightning_spiral.distill.kd import KDLoss
from lightning_spiral.distill.mse import LogitMSELoss
from lightning_spiral.distill.rkd import RKDLoss
from lightning_spiral.distill.taps import FeatureTaps
from lightning_spiral.distill.temperature import CurriculumTemperature, ScheduledTemperature
from lightning_spiral.distill.transformer import AttentionRelationLoss, HiddenStateLoss, layer_terms, uniform_layer_map

__all__ = [
    "AttentionRelationLoss",
    "AttentionTransferLoss",
    "CurriculumTemperature",
    "DKDLoss",
    "DistillationCallback",
    "DistillationInputs",
    "DistillationLoss",
    "Distiller",
    "FeatureLoss",
    "FeatureTaps",
    "FitNetLoss",
    "HiddenStateLoss",
    "KDLoss",
    "LabelCrossEntropy",
    "LogitMSELoss",
    "RKDLoss",
    "ScheduledTemperature",
    "WeightedSum",
    "distillation_terms",
    "feature_paths",
    "layer_terms",
    "select_output",
    "uniform_layer_map",
]
