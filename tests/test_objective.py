"""Tests of lightning_spiral.objective: the value ``lightning-spiral`` returns to a sweeper."""

from __future__ import annotations

import pytest

from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.objective import check_macs_budget, sweep_objective
from lightning_spiral.records import SpiralReport, StageResult


def _result(stage: int, macs: int, val_top1: float, kept: bool = True) -> StageResult:
    return StageResult(stage=stage, top1=val_top1 - 0.01, val_top1=val_top1, params=macs // 10, macs=macs,
                       latency_ms_b1=1.0, latency_ms_b64=10.0, size_bytes=100, model_path="", kept=kept,
                       amount=0.0 if stage == 0 else 0.3, wall_s=1.0)


def test_within_budget_scores_the_validation_top1_of_the_final_kept_stage() -> None:
    report = SpiralReport(teacher=_result(0, 1000, 0.95), stages=[_result(1, 600, 0.93), _result(2, 300, 0.80, kept=False)])
    assert sweep_objective(report, macs_budget=0.6) == pytest.approx(0.93)
    assert sweep_objective(report) == pytest.approx(0.93)


def test_over_budget_scores_below_every_run_within_it() -> None:
    accurate_but_big = SpiralReport(teacher=_result(0, 1000, 0.95), stages=[_result(1, 600, 0.94)])
    small_but_poor = SpiralReport(teacher=_result(0, 1000, 0.95), stages=[_result(1, 400, 0.10)])
    nearer = SpiralReport(teacher=_result(0, 1000, 0.95), stages=[_result(1, 550, 0.50)])
    assert sweep_objective(accurate_but_big, macs_budget=0.5) == pytest.approx(-0.1)
    assert sweep_objective(small_but_poor, 0.5) > 0 > sweep_objective(nearer, 0.5) > sweep_objective(accurate_but_big, 0.5)


@pytest.mark.parametrize("budget", [0, 1.5, -0.2, True, float("nan")])
def test_bad_budget_is_refused(budget) -> None:
    with pytest.raises(SpiralConfigError, match=r"`macs_budget` must be a number in \(0, 1\], got .*\. It is the largest fraction "
                       r"of the teacher's MACs the final model may keep; null for no constraint\.$"):
        check_macs_budget(budget)
