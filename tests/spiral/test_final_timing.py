"""The report's side-by-side timing: the quantized artifact's ONNX Runtime session is one more contender."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import lightning_spiral.spiral.final_timing as final_timing  # noqa: E402
from lightning_spiral.deploy import export_onnx  # noqa: E402
from lightning_spiral.records import QuantizedResult, SpiralReport, StageResult  # noqa: E402

SHAPE = (1, 8, 8)


def network(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(width * 64, 10))


def test_the_quantized_artifact_is_timed_in_the_same_rounds_on_the_same_threads(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    networks = {0: network(16), 1: network(4)}
    path = tmp_path / "model.onnx"
    export_onnx(networks[1], path, SHAPE)
    sessions: list[int] = []
    real_session = final_timing.onnx_session
    monkeypatch.setattr(final_timing, "onnx_session", lambda file, threads: sessions.append(threads) or real_session(file, threads))
    timing = final_timing.time_side_by_side(networks, torch.zeros(1, *SHAPE), rounds=2, repeats=2, threads=2, quantized=path)
    assert sessions == [timing["threads"]]  # ONNX Runtime runs on the thread count the PyTorch models are timed with
    served = timing["quantized"]
    assert sorted(timing["stages"]) == ["0", "1"] and served["runtime"].startswith("onnxruntime ")
    assert served["speedup_b64"] > 0 and len(served["speedup_b64_range"]) == 2 and served["layout_b64"] == "contiguous"
    assert isinstance(served["flagged"], list)


TEACHER = StageResult(stage=0, top1=0.9, val_top1=0.9, params=10, macs=100, latency_ms_b1=1.0, latency_ms_b64=9.0,
                      size_bytes=10, model_path="stage_0/model.pt", kept=True, amount=0.0, wall_s=1.0)


def test_timing_is_due_until_the_quantized_artifact_was_timed_with_the_stages() -> None:
    report = SpiralReport(teacher=TEACHER)
    assert final_timing.timing_is_due(report)
    report.timing = {"stages": {"0": {}}}  # recorded before the quantize stage ran (or by an older version)
    assert not final_timing.timing_is_due(report)
    report.quantized = QuantizedResult(kind="int8_ptq", top1=0.9, val_top1=0.9, size_bytes=1, runtime="onnxruntime",
                                       model_path="quantized/model.onnx")
    assert final_timing.timing_is_due(report)
    report.timing["quantized"] = {"speedup_b64": 3.0}
    assert not final_timing.timing_is_due(report)
