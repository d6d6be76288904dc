"""The `quantized` entry of a report: JSON round trip, table row, plot."""

from __future__ import annotations

import json

from lightning_spiral.deploy import QuantizedResult
from lightning_spiral.records import SpiralReport, StageResult, read_report
from lightning_spiral.report import render_markdown, render_table, table_rows, write_report

TEACHER = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0, latency_ms_b64=10.0,
                      size_bytes=4096, model_path="stage_0/model.pt", kept=True, amount=0.0, wall_s=1.0)
QUANTIZED = QuantizedResult(kind="int8_ptq", top1=0.79, val_top1=0.8, size_bytes=1024, latency_ms_b1=0.2,
                            latency_ms_b64=4.0, runtime="onnxruntime 1.32.0", model_path="quantized/model.onnx", note="QDQ")


def test_report_round_trips_the_quantized_entry(tmp_path) -> None:
    report = SpiralReport(teacher=TEACHER, quantized=QUANTIZED)
    write_report(report, tmp_path)
    assert read_report(tmp_path).quantized == QUANTIZED
    assert json.loads((tmp_path / "report.json").read_text())["quantized"]["latency_ms_b64"] == 4.0
    assert (tmp_path / "spiral.png").read_bytes()[:4] == b"\x89PNG"


def test_quantized_row_is_measured_against_the_teacher() -> None:
    report = SpiralReport(teacher=TEACHER, quantized=QUANTIZED)
    row = table_rows(report)[-1]
    assert row[:4] == ["int8_ptq", "–", "79.00", "-1.00"]
    assert "2.50×" in row and "1.0 kB" in row
    assert "| int8_ptq | – | 79.00 | -1.00 |" in render_markdown(report)
    assert render_table(report).row_count == 2


def test_reports_without_quantization_read_as_before() -> None:
    data = SpiralReport(teacher=TEACHER).to_dict()
    assert data["quantized"] is None
    del data["quantized"]  # a report.json written before this entry existed
    assert SpiralReport.from_dict(data).quantized is None
