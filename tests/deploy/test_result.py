"""The `quantized` entry of a report: JSON round trip, table row, its side-by-side line, plot."""

from __future__ import annotations

import json

from lightning_spiral.deploy import QuantizedResult
from lightning_spiral.records import SpiralReport, StageResult, read_report
from lightning_spiral.report import render_markdown, render_table, table_rows, write_report
from lightning_spiral.report_timing import timing_line

TEACHER = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0, latency_ms_b64=10.0,
                      size_bytes=4096, model_path="stage_0/model.pt", kept=True, amount=0.0, wall_s=1.0)
QUANTIZED = QuantizedResult(kind="int8_ptq", top1=0.79, val_top1=0.8, size_bytes=1024, runtime="onnxruntime 1.32.0",
                            model_path="quantized/model.onnx", note="QDQ")
FIGURES = {"latency_ms_b1": 0.2, "latency_ms_b64": 4.0, "latency_ms_b64_range": [3.9, 6.0], "layout_b64": "contiguous",
           "speedup_b64": 2.5, "speedup_b64_range": [1.6, 2.6], "flagged": [64]}
TIMING = {"device": "cpu", "threads": 2, "rounds": 5, "repeats": 20, "max_spread": 0.15, "note": None,
          "stages": {"0": {**FIGURES, "speedup_b64": 1.0, "speedup_b64_range": [1.0, 1.0], "flagged": []}},
          "quantized": {**FIGURES, "runtime": "onnxruntime 1.32.0"}}


def timed_report() -> SpiralReport:
    return SpiralReport(teacher=TEACHER, quantized=QUANTIZED, timing=json.loads(json.dumps(TIMING)))


def test_report_round_trips_the_quantized_entry(tmp_path) -> None:
    report = timed_report()
    write_report(report, tmp_path)
    assert read_report(tmp_path).quantized == QUANTIZED
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["timing"]["quantized"]["speedup_b64_range"] == [1.6, 2.6]
    assert "latency_ms_b64" not in data["quantized"]  # its latency is the side-by-side one, under `timing`
    assert (tmp_path / "spiral.png").read_bytes()[:4] == b"\x89PNG"


def test_quantized_row_shows_the_side_by_side_figures_flagged_when_rounds_disagree() -> None:
    report = timed_report()
    row = table_rows(report)[-1]
    assert row[:4] == ["int8_ptq", "–", "79.00", "-1.00"]
    assert "2.50×?" in row and "4.00" in row and "1.0 kB" in row
    assert "| int8_ptq | – | 79.00 | -1.00 |" in render_markdown(report)
    assert render_table(report).row_count == 2
    assert "? = rounds disagree by more than 15%" in timing_line(report)  # the artifact alone is flagged


def test_the_report_states_where_the_quantized_figure_is_from() -> None:
    markdown = render_markdown(timed_report())
    line = ("int8_ptq in onnxruntime 1.32.0 (2 threads, batch 64): 2.50×? the teacher's speed (1.60–2.60× over 5 rounds), "
            "4.00 ms; timed in the same alternating rounds as the stages.")
    assert line in markdown
    assert line in str(render_table(timed_report()).caption)


def test_a_quantized_model_not_yet_timed_shows_no_latency() -> None:
    report = SpiralReport(teacher=TEACHER, quantized=QUANTIZED)  # written between the quantize stage and the timing
    row = dict(zip(("b1 ms", "b64 ms", "speedup b64"), table_rows(report)[-1][8:11]))
    assert row == {"b1 ms": "–", "b64 ms": "–", "speedup b64": "–"}
    assert "int8_ptq in onnxruntime" not in render_markdown(report)


def test_older_reports_read_as_before() -> None:
    data = timed_report().to_dict()
    data["quantized"] = {**data["quantized"], "latency_ms_b1": 0.2, "latency_ms_b64": 4.0}  # timed alone, before
    del data["timing"]["quantized"]
    old = SpiralReport.from_dict(data)
    assert old.quantized == QUANTIZED and table_rows(old)[-1][10] == "–"
    del data["quantized"]  # a report.json written before this entry existed
    assert SpiralReport.from_dict(data).quantized is None
