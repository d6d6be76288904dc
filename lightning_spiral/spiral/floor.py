"""The floor: which stages the spiral keeps, judged on the monitored validation value against the teacher's.

With ``schedule="constant"`` every stage is a possible end point, so every stage is judged as it
finishes: worse than the teacher's by more than the monitor's ``max_drop`` and it is rolled back (``kept=False``)
and the spiral stops. With a MACs schedule (geometric, linear, cubic) only the last stage reaches
the target; the stages before it are *waypoints*, often trained for a single epoch (the recipe that
won ``benchmarks/spiral_search.py``), whose accuracy is not meant to hold yet. They are promoted
without judgement; if the last stage then misses the floor, it is rolled back and so is every
waypoint below the floor, so the final model is the last stage within the floor (or the teacher).

Example:
    >>> from lightning_spiral.records import StageResult
    >>> teacher = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0,
    ...     latency_ms_b64=9.0, size_bytes=1, model_path="stage_0/model.pt", kept=True, amount=0.0, wall_s=1.0)
    >>> waypoint = StageResult(stage=1, top1=0.6, val_top1=0.6, params=5, macs=50, latency_ms_b1=0.5,
    ...     latency_ms_b64=5.0, size_bytes=1, model_path="stage_1/model.pt", kept=True, amount=0.3, wall_s=1.0)
    >>> judge_stage(waypoint, teacher, Monitor("val/top1", max_drop=0.02), waypoint=True); waypoint.kept
    True
    >>> judge_stage(waypoint, teacher, Monitor("val/top1", max_drop=0.02), waypoint=False); waypoint.kept
    False
"""

from __future__ import annotations

from lightning_spiral.records import SpiralReport, StageResult, format_score
from lightning_spiral.spiral.monitor import BUILTIN_KEY, Monitor


def judge_stage(result: StageResult, teacher: StageResult, monitor: Monitor, *, waypoint: bool) -> None:
    """Roll ``result`` back (``kept=False``, with the reason) when it falls below the floor; waypoints pass."""
    if monitor.within(teacher.val_score, result.val_score):
        return
    worse = monitor.describe_drop(teacher.val_score, result.val_score)
    if waypoint:
        result.note = (f"waypoint of the schedule: validation {monitor.key} {worse} than the teacher's, "
                       "judged only if the last stage misses the floor")
        return
    result.kept = False
    result.note = (
        f"rolled back: validation {monitor.key} {format_score(monitor.key, result.val_score)} is {worse} than the "
        f"teacher's {format_score(monitor.key, teacher.val_score)} (max drop {_allowed(monitor)})"
    )


def settle_waypoints(report: SpiralReport, monitor: Monitor) -> list[int]:
    """After a schedule's last stage was rolled back: roll back the waypoints below the floor too.

    Returns the stages rolled back here, so that :attr:`SpiralReport.final` is the last stage
    within the floor (or the teacher).
    """
    if not report.stages or report.stages[-1].kept:
        return []
    settled = []
    for result in report.stages[:-1]:
        if result.kept and not monitor.within(report.teacher.val_score, result.val_score):
            result.kept = False
            result.note = (f"rolled back after the last stage missed the floor: validation {monitor.key} "
                           f"{monitor.describe_drop(report.teacher.val_score, result.val_score)} than the teacher's "
                           f"(max drop {_allowed(monitor)})")
            settled.append(result.stage)
    return settled


def _allowed(monitor: Monitor) -> str:
    return f"{monitor.max_drop:.2%}" if monitor.relative or monitor.key == BUILTIN_KEY else f"{monitor.max_drop:g}"
