"""What the spiral's optional last stage does: the ``quantize`` config group, as one validated record."""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

from lightning_spiral.checks import check_choice, check_int, check_interval, check_positive
from lightning_spiral.deploy.runtime import require_deploy_extra

QuantizeKind = Literal["none", "int8_ptq", "int8_qat", "fp16"]
CalibrationSplit = Literal["train", "val"]


@dataclasses.dataclass(frozen=True)
class QuantizeSettings:
    """How to quantize the spiral's final model for serving in ONNX Runtime.

    Args:
        kind: ``"none"`` (no last stage), ``"int8_ptq"`` (static INT8 after training),
            ``"int8_qat"`` (INT8 after training; when it loses more than ``max_top1_drop`` of
            validation top-1, fake-quantized fine-tuning first), ``"fp16"`` (half-precision weights).
        calibration_batches: batches of ``calibration_split`` that set the INT8 activation ranges.
        calibration_split: ``"val"`` (the validation split: no augmentation) or ``"train"``; the
            test split is never used for calibration.
        max_top1_drop: for ``"int8_qat"``, the largest fall of validation top-1 (fraction; 0.01 = 1
            point) that post-training INT8 may show before fine-tuning is run.
        qat_epochs: epochs of quantization-aware fine-tuning.
        qat_lr: learning rate of that fine-tuning (SGD, momentum 0.9, constant).

    Example:
        >>> QuantizeSettings(kind="int8_ptq", calibration_batches=4).kind
        'int8_ptq'
        >>> QuantizeSettings(kind="int4")
        Traceback (most recent call last):
            ...
        lightning_spiral.errors.SpiralConfigError: `kind` must be one of ['none', 'int8_ptq', 'int8_qat', 'fp16'], got 'int4'.
    """

    kind: QuantizeKind = "none"
    calibration_batches: int = 8
    calibration_split: CalibrationSplit = "val"
    max_top1_drop: float = 0.01
    qat_epochs: int = 2
    qat_lr: float = 0.005

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, get_args(QuantizeKind))
        check_choice("calibration_split", self.calibration_split, get_args(CalibrationSplit),
                     hint="The test split is for reported numbers only.")
        check_int("calibration_batches", self.calibration_batches, 1)
        check_int("qat_epochs", self.qat_epochs, 1)
        check_interval("max_top1_drop", self.max_top1_drop, "[0, 1]", hint="It is a fraction of top-1: 0.01 is 1 point.")
        check_positive("qat_lr", self.qat_lr, hint="It is the learning rate of the fine-tuning, e.g. 0.005.")
        if self.kind != "none":
            require_deploy_extra(f"quantize={self.kind}")

    def to_dict(self) -> dict[str, object]:
        """Plain values, as recorded in the run's settings."""
        return dataclasses.asdict(self)
