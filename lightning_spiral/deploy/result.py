"""The record of the spiral's quantized model, as ``report.json`` stores it under ``quantized``."""

from __future__ import annotations

import dataclasses
from typing import Any

from lightning_spiral.errors import SpiralConfigError


@dataclasses.dataclass
class QuantizedResult:
    """The quantized final model, measured in the runtime that serves it.

    Args:
        kind: the ``quantize`` option that made it (``"int8_ptq"``, ``"int8_qat"``, ``"fp16"``).
        top1: test top-1 in the serving runtime, as a fraction.
        val_top1: validation top-1 in the serving runtime, as a fraction.
        size_bytes: size of the model file.
        latency_ms_b1: median latency at batch 1 in the serving runtime, milliseconds.
        latency_ms_b64: median latency at batch 64, milliseconds.
        runtime: the serving runtime and its version, e.g. ``"onnxruntime 1.32.0"``.
        model_path: the model file, relative to the run directory.
        note: how it was made (e.g. whether fine-tuning ran).

    Example:
        >>> q = QuantizedResult(kind="int8_ptq", top1=0.76, val_top1=0.77, size_bytes=130_000,
        ...     latency_ms_b1=0.1, latency_ms_b64=9.0, runtime="onnxruntime 1.32.0",
        ...     model_path="quantized/model.onnx")
        >>> QuantizedResult.from_dict(q.to_dict()) == q
        True
    """

    kind: str
    top1: float
    val_top1: float
    size_bytes: int
    latency_ms_b1: float
    latency_ms_b64: float
    runtime: str
    model_path: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantizedResult:
        """Inverse of :meth:`to_dict`."""
        fields = dataclasses.fields(cls)
        missing = sorted(f.name for f in fields if f.default is dataclasses.MISSING and f.name not in data)
        if missing:
            raise SpiralConfigError(f"`data` of a quantized result lacks the keys {missing}; found {sorted(data)}.")
        return cls(**{f.name: data[f.name] for f in fields if f.name in data})
