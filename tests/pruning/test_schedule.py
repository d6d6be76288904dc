"""Pruning schedules across stages: pure functions, checked against their formulas."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.pruning.schedule import SCHEDULE_NAMES, stage_macs_ratios


def test_known_values() -> None:
    assert stage_macs_ratios(0.25, 2, "geometric") == pytest.approx([0.5, 0.25])
    assert stage_macs_ratios(0.4, 3, "linear") == pytest.approx([0.8, 0.6, 0.4])
    # AGP with s_f = 0.8: s_k = 0.8 (1 - (1 - k/2)^3) -> 0.7, 0.8
    assert stage_macs_ratios(0.2, 2, "cubic") == pytest.approx([0.3, 0.2])


@given(final=st.floats(0.01, 0.99), stages=st.integers(1, 8), schedule=st.sampled_from(SCHEDULE_NAMES))
def test_every_schedule_decreases_and_ends_on_the_target(final: float, stages: int, schedule: str) -> None:
    ratios = stage_macs_ratios(final, stages, schedule)
    assert len(ratios) == stages
    assert ratios[-1] == pytest.approx(final)
    assert all(1 > a > b for a, b in zip(ratios, ratios[1:]))


def test_cubic_is_front_loaded_compared_with_linear() -> None:
    assert stage_macs_ratios(0.1, 4, "cubic")[0] < stage_macs_ratios(0.1, 4, "linear")[0]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.2, 2, "agp"), r"`schedule` must be one of \['geometric', 'linear', 'cubic'\], got 'agp'"),
        ((1.2, 2, "linear"), r"`final_ratio` must be a number in \(0, 1\), got 1.2"),
        ((0.2, 0, "linear"), r"`stages` must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(args: tuple, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        stage_macs_ratios(*args)
