"""Tests of lightning_spiral.report: JSON round trip, markdown figures, plot, rich table."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.records import SpiralReport, StageResult, machine_info, read_report
from lightning_spiral.report import format_bytes, format_count, print_report, render_table, write_report


def _result(stage: int, top1: float, macs: int, latency_ms_b64: float, *, kept: bool = True, **extra) -> StageResult:
    fields = {
        "stage": stage,
        "top1": top1,
        "val_top1": top1 + 0.01,
        "params": macs // 100,
        "macs": macs,
        "latency_ms_b1": latency_ms_b64 / 30,
        "latency_ms_b64": latency_ms_b64,
        "size_bytes": macs // 20,
        "model_path": f"stage_{stage}/model.pt",
        "kept": kept,
        "amount": 0.0 if stage == 0 else 0.3,
        "wall_s": 100.0 + stage,
    }
    return StageResult(**{**fields, **extra})


@pytest.fixture
def report() -> SpiralReport:
    return SpiralReport(
        teacher=_result(0, 0.7805, 43_800_000, 40.0),
        stages=[
            _result(1, 0.7770, 15_300_000, 20.0, top5=0.98),
            _result(2, 0.7646, 8_760_000, 16.0),
            _result(3, 0.7012, 4_380_000, 10.0, kept=False, note="val top-1 below the floor"),
        ],
        settings={"teacher_mode": "original", "target_macs_ratio": 0.2},
        machine=machine_info(threads=2),
    )


def test_final_is_the_last_kept_stage(report: SpiralReport) -> None:
    assert report.final is report.stages[1]


def test_final_is_the_teacher_when_nothing_was_kept(report: SpiralReport) -> None:
    only_failures = dataclasses.replace(report, stages=[dataclasses.replace(report.stages[0], kept=False)])
    assert only_failures.final is report.teacher


def test_write_report_json_keys_values_and_round_trip(report: SpiralReport, tmp_path: Path) -> None:
    write_report(report, tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert {"teacher", "stages", "final", "settings", "machine"} <= set(data)
    assert len(data["stages"]) == 3
    second = data["stages"][1]
    for key in ("stage", "top1", "params", "macs", "latency_ms_b1", "latency_ms_b64", "size_bytes",
                "model_path", "kept", "val_top1", "amount", "wall_s", "note", "top5"):  # fmt: skip
        assert key in second
    assert second["macs_ratio"] == pytest.approx(0.2)
    assert second["params_ratio"] == pytest.approx(8_760_000 / 43_800_000)
    assert second["latency_ratio_b64"] == pytest.approx(0.4)
    assert second["latency_ratio_b1"] == pytest.approx(0.4)
    assert data["teacher"]["macs_ratio"] == 1.0
    assert data["final"]["stage"] == 2
    assert data["stages"][2]["kept"] is False and data["stages"][2]["note"] == "val top-1 below the floor"
    assert data["stages"][0]["top5"] == 0.98
    assert data["settings"] == {"teacher_mode": "original", "target_macs_ratio": 0.2}
    assert data["machine"]["threads"] == 2
    assert SpiralReport.from_dict(data) == report
    assert read_report(tmp_path) == report


def test_write_report_markdown_rows_and_deltas(report: SpiralReport, tmp_path: Path) -> None:
    write_report(report, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| teacher", "| 1", "| 2", "| 3"]
    assert "| teacher | yes | 78.05 | +0.00 |" in rows[0]
    assert "| 1 | yes | 77.70 | -0.35 |" in rows[1]
    assert "| 2 | yes | 76.46 | -1.59 |" in rows[2]
    assert "| 3 | no | 70.12 | -7.93 |" in rows[3] and "val top-1 below the floor" in rows[3]
    assert "| 43.8M | 100.0 |" in rows[0] and "| 8.8M | 20.0 |" in rows[2]
    assert "| ≈2.50× |" in rows[2]  # no side-by-side timing in this report: provisional
    assert "Final: stage 2, top-1 76.46 % (-1.59 pts)" in markdown
    assert "teacher_mode=original" in markdown and "threads=2" in markdown


def test_write_report_png_and_no_temporary_files(report: SpiralReport, tmp_path: Path) -> None:
    write_report(report, tmp_path)
    assert (tmp_path / "spiral.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md", "spiral.png"]


def test_write_report_overwrites_an_earlier_report(report: SpiralReport, tmp_path: Path) -> None:
    write_report(dataclasses.replace(report, stages=[]), tmp_path)
    write_report(report, tmp_path)
    assert len(read_report(tmp_path).stages) == 3


def test_markdown_note_cannot_break_the_table(report: SpiralReport, tmp_path: Path) -> None:
    odd = dataclasses.replace(report.stages[2], note="a | b\nc")
    write_report(dataclasses.replace(report, stages=[*report.stages[:2], odd]), tmp_path)
    row = (tmp_path / "report.md").read_text().splitlines()[7]
    assert row.startswith("| 3 | no |") and row.endswith("| a \\| b c |")


def test_render_table_has_one_row_per_stage_and_the_teacher(report: SpiralReport) -> None:
    table = render_table(report)
    assert table.row_count == 4
    assert list(table.columns[0].cells) == ["teacher", "1", "2", "3"]


def test_print_report_prints_every_stage(report: SpiralReport) -> None:
    console = Console(file=io.StringIO(), width=200)
    print_report(report, console)
    text = console.file.getvalue()
    assert "teacher" in text and "76.46" in text and "70.12" in text
    assert "stage 3: val top-1 below the floor" in text


def test_print_report_shows_notes_verbatim(report: SpiralReport) -> None:
    odd = dataclasses.replace(report.stages[2], note="floor [bold]0.75[/bold]")
    console = Console(file=io.StringIO(), width=200)
    print_report(dataclasses.replace(report, stages=[odd]), console)
    assert "floor [bold]0.75[/bold]" in console.file.getvalue()


@pytest.mark.parametrize(
    ("value", "count", "size"),
    [
        (950, "950", "950 B"),
        (438_000, "438K", "438 kB"),
        (1_234_567, "1.2M", "1.2 MB"),
        (41_000_000, "41.0M", "41.0 MB"),
        (999_960, "1.0M", "1.0 MB"),
        (2_500_000_000, "2.5G", "2.5 GB"),
    ],
)
def test_number_formatting(value: int, count: str, size: str) -> None:
    assert format_count(value) == count
    assert format_bytes(value) == size


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"top1": 78.0}, r"`top1` must be a number in \[0, 1\], got 78.0"),
        ({"val_top1": -0.1}, r"`val_top1` must be a number in \[0, 1\], got -0.1"),
        ({"top5": 1.5}, r"`top5` must be a number in \[0, 1\], got 1.5"),
        ({"amount": 1.0}, r"`amount` must be a number in \[0, 1\), got 1.0"),
        ({"stage": -1}, r"`stage` must be an integer >= 0, got -1. 0 is the teacher."),
    ],
)
def test_stage_result_rejects_bad_values(extra: dict, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        dataclasses.replace(_result(1, 0.5, 1000, 1.0), **extra)


def test_spiral_report_rejects_misplaced_stages(report: SpiralReport) -> None:
    with pytest.raises(SpiralConfigError, match=r"`teacher` must be stage 0, got stage 1"):
        SpiralReport(teacher=report.stages[0])
    with pytest.raises(SpiralConfigError, match=r"`stages` must hold stages >= 1 .* got \[0\]"):
        SpiralReport(teacher=report.teacher, stages=[report.teacher])


def test_from_dict_names_missing_keys(report: SpiralReport) -> None:
    entry = report.teacher.to_dict()
    del entry["macs"]
    with pytest.raises(SpiralConfigError, match=r"lacks the keys \['macs'\]"):
        StageResult.from_dict(entry)
    with pytest.raises(SpiralConfigError, match=r"lacks the key 'teacher'"):
        SpiralReport.from_dict({"stages": []})
