"""What the spiral's optional last stage does: the ``quantize`` config group, as one validated record."""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

from lightning_spiral.deploy.runtime import require_deploy_extra
from lightning_spiral.errors import SpiralConfigError

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
        if self.kind not in get_args(QuantizeKind):
            raise SpiralConfigError(f"`kind` must be one of {list(get_args(QuantizeKind))}, got {self.kind!r}.")
        if self.calibration_split not in get_args(CalibrationSplit):
            raise SpiralConfigError(
                f"`calibration_split` must be one of {list(get_args(CalibrationSplit))}, got {self.calibration_split!r} "
                "(the test split is for reported numbers only)."
            )
        for name in ("calibration_batches", "qat_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpiralConfigError(f"`{name}` must be an integer >= 1, got {value!r}.")
        if isinstance(self.max_top1_drop, bool) or not isinstance(self.max_top1_drop, (int, float)) or not 0 <= self.max_top1_drop <= 1:
            raise SpiralConfigError(f"`max_top1_drop` must be a fraction in [0, 1], got {self.max_top1_drop!r}.")
        if isinstance(self.qat_lr, bool) or not isinstance(self.qat_lr, (int, float)) or not self.qat_lr > 0:
            raise SpiralConfigError(f"`qat_lr` must be a positive number, got {self.qat_lr!r}.")
        if self.kind != "none":
            require_deploy_extra(f"quantize={self.kind}")

    def to_dict(self) -> dict[str, object]:
        """Plain values, as recorded in the run's settings."""
        return dataclasses.asdict(self)
