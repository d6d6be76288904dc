"""Deploy the spiral's models: ONNX and ``torch.export`` exports, INT8 / fp16 quantization, QAT.

ONNX Runtime serves what this package writes; it comes with the optional ``deploy`` extra and is
imported only when an export or a quantization runs.
"""

from lightning_spiral.deploy.export import Parity, export_onnx, export_pt2, onnx_parity
from lightning_spiral.deploy.qat import add_fake_quant, remove_fake_quant
from lightning_spiral.deploy.quantize import convert_fp16, quantize_int8
from lightning_spiral.records import QuantizedResult
from lightning_spiral.deploy.runtime import onnx_session, onnx_top1
from lightning_spiral.deploy.settings import QuantizeSettings
from lightning_spiral.deploy.stage import QUANTIZED_DIR, run_quantize_stage

__all__ = [
    "QUANTIZED_DIR",
    "Parity",
    "QuantizeSettings",
    "QuantizedResult",
    "add_fake_quant",
    "convert_fp16",
    "export_onnx",
    "export_pt2",
    "onnx_parity",
    "onnx_session",
    "onnx_top1",
    "quantize_int8",
    "remove_fake_quant",
    "run_quantize_stage",
]
