"""Post-training quantization of an exported ONNX graph: static INT8 (QDQ) and fp16 weights.

INT8 follows ONNX Runtime's static quantization (https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html):
``quant_pre_process`` (shape inference + graph optimisation, which folds nothing away that the
quantizer needs), then ``quantize_static`` in the QDQ format with per-channel symmetric int8
weights and per-tensor int8 activations whose ranges come from min/max calibration on real
batches. ONNX Runtime fuses each ``DequantizeLinear -> Conv -> QuantizeLinear`` into an int8 kernel.
On this 2-core x86 CPU it beat torchao's PT2E flow (X86InductorQuantizer + ``torch.compile``) on
speed, file size and start-up time at the same accuracy: see ``benchmarks/RESULTS.md``.

fp16 stores every float tensor in half precision with float32 inputs and outputs (ONNX Runtime's
float16 converter); the CPU computes fp16 only where it has kernels, so this halves the file, not
the latency. ONNX Runtime's CPU provider has no bf16 convolutions, so bf16 is not offered.

Example:
    >>> quantize_int8("model_fp32.onnx", "model_int8.onnx", calibration_batches)  # doctest: +SKIP
    >>> convert_fp16("model_fp32.onnx", "model_fp16.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from lightning_spiral.atomic import atomic_write_bytes
from lightning_spiral.deploy.export import strip_metadata
from lightning_spiral.deploy.runtime import INPUT_NAME, check_onnx_file, require_deploy_extra
from lightning_spiral.errors import SpiralConfigError


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike, calibration: Iterable[torch.Tensor]) -> None:
    """Quantize the float32 ONNX graph at ``fp32_path`` to static INT8 (QDQ) at ``out_path``, atomically.

    Args:
        fp32_path: a graph written by :func:`~lightning_spiral.deploy.export.export_onnx`.
        out_path: where to write the quantized graph.
        calibration: input batches ``(B, *input_shape)`` whose activation ranges set the scales —
            training or validation data, never the test split.
    """
    check_onnx_file("fp32_path", fp32_path)
    require_deploy_extra("quantize_int8")
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise SpiralConfigError("`calibration` must yield at least one batch, got none.")
    reader = _CalibrationReader(itertools.chain([first], batches))
    with tempfile.TemporaryDirectory() as scratch:
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "quantized.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(
            str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
        )
        proto = onnx.load(str(quantized))
    strip_metadata(proto)
    atomic_write_bytes(out_path, proto.SerializeToString())


def convert_fp16(fp32_path: str | os.PathLike, out_path: str | os.PathLike) -> None:
    """Store the float32 ONNX graph at ``fp32_path`` in fp16 (float32 input and output) at ``out_path``."""
    check_onnx_file("fp32_path", fp32_path)
    require_deploy_extra("convert_fp16")
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    strip_metadata(proto)
    atomic_write_bytes(out_path, proto.SerializeToString())


class _CalibrationReader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol (``get_next``) over an iterable of tensors."""

    def __init__(self, batches: Iterable[torch.Tensor]) -> None:
        self._batches: Iterator[torch.Tensor] = iter(batches)

    def get_next(self) -> dict[str, object] | None:
        batch = next(self._batches, None)
        if batch is None:
            return None
        return {INPUT_NAME: batch.detach().cpu().float().numpy()}

