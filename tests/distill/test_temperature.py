"""Temperature schedules and the learned (curriculum) temperature."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_spiral.distill import CurriculumTemperature, KDLoss, ScheduledTemperature
from lightning_spiral.errors import SpiralConfigError


def test_cosine_schedule_values() -> None:
    schedule = ScheduledTemperature(start=6.0, end=2.0, epochs=3, kind="cosine")
    values = []
    for epoch in range(4):
        schedule.set_epoch(epoch)
        values.append(schedule().item())
    assert values == pytest.approx([6.0, 4.0, 2.0, 2.0])


def test_kd_uses_the_scheduled_temperature() -> None:
    schedule = ScheduledTemperature(start=1.0, end=4.0, epochs=2, kind="linear")
    s, t, y = torch.randn(3, 5), torch.randn(3, 5), torch.tensor([0, 1, 2])
    loss = KDLoss(temperature=schedule, alpha=1.0)
    schedule.set_epoch(1)
    assert loss(s, t, y).item() == pytest.approx(KDLoss(temperature=4.0, alpha=1.0)(s, t, y).item(), abs=1e-6)


def test_curriculum_temperature_stays_in_bounds_and_is_trained_adversarially() -> None:
    temperature = CurriculumTemperature(initial=4.0, low=1.0, high=10.0, lambda_max=1.0, epochs=2)
    assert temperature().item() == pytest.approx(4.0, abs=1e-5)
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 5, requires_grad=True), torch.randn(8, 5), torch.randint(0, 5, (8,))
    loss = KDLoss(temperature=temperature, alpha=1.0)
    temperature.set_epoch(0)  # lambda = 0: no gradient reaches the temperature yet
    loss(s, t, y).backward()
    assert temperature.raw.grad.item() == 0.0
    temperature.set_epoch(2)  # lambda = 1: the temperature ascends the loss (reversed gradient)
    temperature.raw.grad = None
    loss(s, t, y).backward()
    raw = temperature.raw.detach().clone().requires_grad_(True)  # the same temperature, no reversal

    class Plain(torch.nn.Module):
        def forward(self) -> torch.Tensor:
            return 1.0 + 9.0 * torch.sigmoid(raw)

    KDLoss(temperature=Plain(), alpha=1.0)(s, t, y).backward()
    assert temperature.raw.grad.item() == pytest.approx(-raw.grad.item(), abs=1e-7)
    assert raw.grad.item() != 0.0
    assert 1.0 < temperature().item() < 10.0
    assert math.isclose(temperature.strength, 1.0)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ScheduledTemperature(start=0.0, end=2.0, epochs=3), r"`start` must be a finite number > 0, got 0.0"),
        (lambda: ScheduledTemperature(start=1.0, end=2.0, epochs=1), r"`epochs` must be an integer >= 2, got 1"),
        (lambda: CurriculumTemperature(initial=12.0, low=1.0, high=10.0), r"`initial` must be a number strictly between `low`=1.0 and `high`=10.0, got 12.0"),
    ],
)
def test_bad_arguments(build, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        build()
