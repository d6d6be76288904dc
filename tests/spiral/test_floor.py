"""The accuracy floor: constant spirals judge every stage, scheduled spirals judge the last one."""

from __future__ import annotations

from lightning_spiral.report import SpiralReport, StageResult
from lightning_spiral.spiral.floor import judge_stage, settle_waypoints


def _result(stage: int, val_top1: float) -> StageResult:
    return StageResult(stage=stage, top1=val_top1, val_top1=val_top1, params=10, macs=100 // (stage + 1), latency_ms_b1=1.0,
                       latency_ms_b64=9.0, size_bytes=1, model_path=f"stage_{stage}/model.pt", kept=True,
                       amount=0.0 if stage == 0 else 0.3, wall_s=1.0)


def _scheduled_run(vals: list[float], teacher: float = 0.80, floor: float = 0.02) -> SpiralReport:
    report = SpiralReport(teacher=_result(0, teacher), stages=[], settings={}, machine={})
    for stage, val in enumerate(vals, start=1):
        result = _result(stage, val)
        judge_stage(result, report.teacher, floor, waypoint=stage < len(vals))
        report.stages.append(result)
    settle_waypoints(report, floor)
    return report


def test_a_stage_below_the_floor_is_rolled_back_with_the_reason() -> None:
    result = _result(1, 0.77)
    judge_stage(result, _result(0, 0.80), 0.02, waypoint=False)
    assert not result.kept and "3.00% below the teacher's 80.00% (max_accuracy_drop 2.00%)" in result.note


def test_a_stage_within_the_floor_is_kept_without_a_note() -> None:
    result = _result(1, 0.785)
    judge_stage(result, _result(0, 0.80), 0.02, waypoint=False)
    assert result.kept and result.note == ""


def test_waypoints_below_the_floor_stay_when_the_last_stage_is_within_it() -> None:
    report = _scheduled_run([0.60, 0.70, 0.79])
    assert [s.kept for s in report.stages] == [True, True, True]
    assert report.final.stage == 3 and "waypoint" in report.stages[0].note


def test_when_the_last_stage_misses_the_floor_the_final_model_is_the_last_stage_within_it() -> None:
    report = _scheduled_run([0.79, 0.60, 0.75])
    assert [s.kept for s in report.stages] == [True, False, False]
    assert report.final.stage == 1 and "last stage missed the floor" in report.stages[1].note


def test_when_no_stage_is_within_the_floor_the_final_model_is_the_teacher() -> None:
    report = _scheduled_run([0.60, 0.70])
    assert not any(s.kept for s in report.stages) and report.final is report.teacher
    assert settle_waypoints(report, 0.02) == []  # settling twice changes nothing
