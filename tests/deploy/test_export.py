"""ONNX and torch.export exports: same outputs as PyTorch at any batch size; fp16 and INT8 close to fp32."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from lightning_spiral.deploy import convert_fp16, export_onnx, export_pt2, onnx_parity, onnx_session, quantize_int8  # noqa: E402
from lightning_spiral.errors import SpiralConfigError  # noqa: E402
from lightning_spiral.models import build_model  # noqa: E402
from lightning_spiral.pruning import prune  # noqa: E402

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def pruned_net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model("small_cnn", num_classes=10, input_shape=SHAPE)
    prune(net, torch.randn(1, *SHAPE), amount=0.3)
    return net.eval()


def test_onnx_export_matches_torch_at_every_batch_size(pruned_net, tmp_path) -> None:
    path = tmp_path / "model.onnx"
    export_onnx(pruned_net, path, SHAPE)
    batches = [torch.randn(n, *SHAPE) for n in (1, 7, 64)]  # dynamic batch: sizes never seen at export
    parity = onnx_parity(pruned_net, path, batches)
    assert parity.samples == 72
    assert parity.max_abs_diff < 1e-4
    assert parity.top1_agreement == 1.0
    assert not list(tmp_path.glob("*.tmp"))
    assert str(tmp_path).encode() not in path.read_bytes()  # no stack traces naming this machine's files


def test_pt2_export_reloads_with_plain_torch_and_matches(pruned_net, tmp_path) -> None:
    path = tmp_path / "model.pt2"
    export_pt2(pruned_net, path, SHAPE)
    reloaded = torch.export.load(path).module()
    for n in (1, 5):
        x = torch.randn(n, *SHAPE)
        torch.testing.assert_close(reloaded(x), pruned_net(x), atol=1e-5, rtol=1e-5)


def test_fp16_and_int8_stay_close_to_fp32_and_shrink_the_file(pruned_net, tmp_path) -> None:
    fp32, fp16, int8 = tmp_path / "fp32.onnx", tmp_path / "fp16.onnx", tmp_path / "int8.onnx"
    export_onnx(pruned_net, fp32, SHAPE)
    convert_fp16(fp32, fp16)
    quantize_int8(fp32, int8, (torch.randn(32, *SHAPE) for _ in range(4)))
    x = torch.randn(16, *SHAPE)
    expected = onnx_session(fp32).run(None, {"input": x.numpy()})[0]
    half = onnx_session(fp16).run(None, {"input": x.numpy()})[0]
    quantized = onnx_session(int8).run(None, {"input": x.numpy()})[0]
    assert abs(half - expected).max() < 1e-2
    assert abs(quantized - expected).max() < 0.1 * abs(expected).max()
    assert fp16.stat().st_size < 0.6 * fp32.stat().st_size
    assert int8.stat().st_size < 0.45 * fp32.stat().st_size


def test_int8_needs_calibration_data(pruned_net, tmp_path) -> None:
    export_onnx(pruned_net, tmp_path / "fp32.onnx", SHAPE)
    with pytest.raises(SpiralConfigError, match=r"`calibration` must yield at least one batch"):
        quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", iter([]))
    assert not (tmp_path / "int8.onnx").exists()
