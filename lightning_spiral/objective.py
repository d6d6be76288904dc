"""The number a Hydra sweeper maximises for one spiral run: validation top-1 under a MACs budget.

``lightning-spiral`` returns :func:`sweep_objective` of its report, so Hydra sweepers that use the
task function's return value (Optuna) can search pruning and distillation settings. The metric is
the *validation* top-1 of the run's final kept stage: test top-1 is for reported numbers only and
never drives a decision, a search included.

The MACs budget is a hard constraint, applied lexicographically: a run whose final model keeps at
most ``macs_budget`` of the teacher's MACs scores its validation top-1 (in [0, 1]); a run above the
budget scores ``-(macs_ratio - macs_budget)`` (< 0). Every run within budget therefore beats every
run over it, whatever their accuracies, and among runs over budget the one nearer to it wins, so
the search is still pulled towards the feasible region. (A soft penalty such as
``top1 - λ · excess`` would need a λ tuned per task and can prefer an over-budget run.)

Example:
    >>> from lightning_spiral.records import SpiralReport, StageResult
    >>> def result(stage, macs, val_top1):
    ...     return StageResult(stage=stage, top1=val_top1, val_top1=val_top1, params=10, macs=macs, latency_ms_b1=1.0,
    ...         latency_ms_b64=9.0, size_bytes=1, model_path="", kept=True, amount=0.0 if stage == 0 else 0.3, wall_s=1.0)
    >>> report = SpiralReport(teacher=result(0, 100, 0.9), stages=[result(1, 45, 0.88)])
    >>> sweep_objective(report, macs_budget=0.5)
    0.88
    >>> round(sweep_objective(report, macs_budget=0.4), 6)
    -0.05
"""

from __future__ import annotations

from lightning_spiral.checks import check_interval, refuse
from lightning_spiral.module_network import shown
from lightning_spiral.records import SpiralReport


def check_macs_budget(macs_budget: float | None) -> float | None:
    """Return ``macs_budget`` as a float if it is ``None`` or a fraction in (0, 1], else raise naming it."""
    return check_interval("macs_budget", macs_budget, "(0, 1]", none_ok=True,
                          hint="It is the largest fraction of the teacher's MACs the final model may keep; "
                               "null for no constraint.")


def sweep_objective(report: SpiralReport, macs_budget: float | None = None) -> float:
    """Validation top-1 of the final kept stage; ``-(excess MACs ratio)`` when it is over ``macs_budget``.

    Args:
        report: the finished run.
        macs_budget: largest allowed MACs of the final model as a fraction of the teacher's;
            ``None``: no constraint.
    """
    if not isinstance(report, SpiralReport):
        raise refuse("report", shown(report), "a SpiralReport (what Spiral.run returns)")
    budget = check_macs_budget(macs_budget)
    final = report.final
    if budget is None:
        return final.val_score
    macs_ratio = final.macs / report.teacher.macs
    return final.val_score if macs_ratio <= budget else -(macs_ratio - budget)
