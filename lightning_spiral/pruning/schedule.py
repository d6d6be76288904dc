"""How much to prune at each stage: pure functions from (final MACs ratio, stages) to per-stage targets.

Each schedule returns the *cumulative* MACs ratio (student MACs / teacher MACs) to reach after every
stage; the last entry is the final target. With ``r`` the final ratio, ``N`` stages, ``k = 1..N``:

- ``"geometric"``: ``r^(k/N)`` — every stage keeps the same fraction of the MACs it starts with.
- ``"linear"``: ``1 - (1 - r) k/N`` — the same share of the teacher's MACs is removed per stage,
  so later stages cut a larger fraction of what is left.
- ``"cubic"``: ``1 - (1 - r)(1 - (1 - k/N)^3)`` — automated gradual pruning (Zhu & Gupta 2017,
  *To prune, or not to prune*, https://arxiv.org/abs/1710.01878): front-loaded, most of the cut
  happens early while the network has the most redundancy, and the last stages are gentle.

Example:
    >>> [round(r, 3) for r in stage_macs_ratios(0.25, 2, "geometric")]
    [0.5, 0.25]
    >>> [round(r, 3) for r in stage_macs_ratios(0.2, 2, "cubic")]
    [0.3, 0.2]
"""

from __future__ import annotations

from typing import Literal, get_args

from lightning_spiral.checks import check_choice, check_int, check_interval

ScheduleName = Literal["geometric", "linear", "cubic"]
SCHEDULE_NAMES: tuple[str, ...] = get_args(ScheduleName)


def stage_macs_ratios(final_ratio: float, stages: int, schedule: ScheduleName) -> list[float]:
    """Cumulative MACs ratio after each of ``stages`` stages, ending exactly at ``final_ratio``."""
    check_choice("schedule", schedule, SCHEDULE_NAMES)
    final_ratio = check_interval("final_ratio", final_ratio, "(0, 1)", hint="It is the MACs ratio after the last stage.")
    check_int("stages", stages, 1)
    ratios = []
    for k in range(1, stages + 1):
        progress = k / stages
        if schedule == "geometric":
            ratios.append(final_ratio**progress)
        elif schedule == "linear":
            ratios.append(1 - (1 - final_ratio) * progress)
        else:
            ratios.append(1 - (1 - final_ratio) * (1 - (1 - progress) ** 3))
    return ratios
