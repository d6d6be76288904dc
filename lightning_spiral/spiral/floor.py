"""The accuracy floor: which stages the spiral keeps, judged on validation top-1 against the teacher.

With ``schedule="constant"`` every stage is a possible end point, so every stage is judged as it
finishes: more than ``max_accuracy_drop`` below the teacher and it is rolled back (``kept=False``)
and the spiral stops. With a MACs schedule (geometric, linear, cubic) only the last stage reaches
the target; the stages before it are *waypoints*, often trained for a single epoch (the recipe that
won ``benchmarks/spiral_search.py``), whose accuracy is not meant to hold yet. They are promoted
without judgement; if the last stage then misses the floor, it is rolled back and so is every
waypoint below the floor, so the final model is the last stage within the floor (or the teacher).

Example:
    >>> from lightning_spiral.report import StageResult
    >>> teacher = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0,
    ...     latency_ms_b64=9.0, size_bytes=1, model_path="stage_0/model.pt", kept=True, amount=0.0, wall_s=1.0)
    >>> waypoint = StageResult(stage=1, top1=0.6, val_top1=0.6, params=5, macs=50, latency_ms_b1=0.5,
    ...     latency_ms_b64=5.0, size_bytes=1, model_path="stage_1/model.pt", kept=True, amount=0.3, wall_s=1.0)
    >>> judge_stage(waypoint, teacher, max_accuracy_drop=0.02, waypoint=True); waypoint.kept
    True
    >>> judge_stage(waypoint, teacher, max_accuracy_drop=0.02, waypoint=False); waypoint.kept
    False
"""

from __future__ import annotations

from lightning_spiral.report import SpiralReport, StageResult


def accuracy_drop(result: StageResult, teacher: StageResult) -> float:
    """How far ``result``'s validation top-1 lies below the teacher's (a fraction; negative: above)."""
    return teacher.val_top1 - result.val_top1


def judge_stage(result: StageResult, teacher: StageResult, max_accuracy_drop: float, *, waypoint: bool) -> None:
    """Roll ``result`` back (``kept=False``, with the reason) when it falls below the floor; waypoints pass."""
    drop = accuracy_drop(result, teacher)
    if waypoint:
        if drop > max_accuracy_drop:
            result.note = (f"waypoint of the schedule: validation top-1 {drop:.2%} below the teacher's, "
                           "judged only if the last stage misses the floor")
        return
    if drop > max_accuracy_drop:
        result.kept = False
        result.note = (
            f"rolled back: validation top-1 {result.val_top1:.2%} is {drop:.2%} below the teacher's "
            f"{teacher.val_top1:.2%} (max_accuracy_drop {max_accuracy_drop:.2%})"
        )


def settle_waypoints(report: SpiralReport, max_accuracy_drop: float) -> list[int]:
    """After a schedule's last stage was rolled back: roll back the waypoints below the floor too.

    Returns the stages rolled back here, so that :attr:`SpiralReport.final` is the last stage
    within the floor (or the teacher).
    """
    if not report.stages or report.stages[-1].kept:
        return []
    settled = []
    for result in report.stages[:-1]:
        if result.kept and accuracy_drop(result, report.teacher) > max_accuracy_drop:
            result.kept = False
            result.note = (f"rolled back after the last stage missed the floor: validation top-1 "
                           f"{accuracy_drop(result, report.teacher):.2%} below the teacher's "
                           f"(max_accuracy_drop {max_accuracy_drop:.2%})")
            settled.append(result.stage)
    return settled
