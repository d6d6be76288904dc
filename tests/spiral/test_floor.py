"""The accuracy floor: constant spirals judge every stage, scheduled spirals judge the last one."""

from __future__ import annotations

from lightning_spiral.records import SpiralReport, StageResult
from lightning_spiral.spiral.floor import judge_stage, settle_waypoints
from lightning_spiral.spiral.monitor import Monitor


def _result(stage: int, val_top1: float) -> StageResult:
    return StageResult(stage=stage, top1=val_top1, val_top1=val_top1, params=10, macs=100 // (stage + 1), latency_ms_b1=1.0,
                       latency_ms_b64=9.0, size_bytes=1, model_path=f"stage_{stage}/model.pt", kept=True,
                       amount=0.0 if stage == 0 else 0.3, wall_s=1.0)


def _scheduled_run(vals: list[float], teacher: float = 0.80, floor: Monitor = Monitor("val/top1", max_drop=0.02)) -> SpiralReport:
    report = SpiralReport(teacher=_result(0, teacher), stages=[], settings={}, machine={})
    for stage, val in enumerate(vals, start=1):
        result = _result(stage, val)
        judge_stage(result, report.teacher, floor, waypoint=stage < len(vals))
        report.stages.append(result)
    settle_waypoints(report, floor)
    return report


def test_a_stage_below_the_floor_is_rolled_back_with_the_reason() -> None:
    result = _result(1, 0.77)
    judge_stage(result, _result(0, 0.80), Monitor("val/top1", max_drop=0.02), waypoint=False)
    assert not result.kept and "validation val/top1 77.00 is 3.00% worse than the teacher's 80.00 (max drop 2.00%)" in result.note


def test_a_stage_within_the_floor_is_kept_without_a_note() -> None:
    result = _result(1, 0.785)
    judge_stage(result, _result(0, 0.80), Monitor("val/top1", max_drop=0.02), waypoint=False)
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


def test_a_loss_is_judged_downwards_and_relative_to_the_teacher() -> None:
    loss = Monitor("val_loss", mode="min", max_drop=0.1, relative=True)
    teacher, within, beyond, better = (_result(stage, value) for stage, value in ((0, 0.5), (1, 0.54), (2, 0.56), (3, 0.30)))
    for result in (within, beyond, better):
        judge_stage(result, teacher, loss, waypoint=False)
    assert within.kept and better.kept and not beyond.kept
    assert "validation val_loss 0.56 is 12.00% worse than the teacher's 0.5 (max drop 10.00%)" in beyond.note


def test_a_nan_validation_value_is_never_within_the_floor() -> None:
    result = _result(1, 0.9)
    result.val_score = float("nan")
    judge_stage(result, _result(0, 0.8), Monitor("val/top1", max_drop=1.0), waypoint=False)
    assert not result.kept
