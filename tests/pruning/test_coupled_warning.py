"""``prune`` warns when coupled channels cut a layer far more than ``amount``, and stays silent otherwise.

The case from the bug report: a gated block splits a convolution's output with ``torch.chunk`` and
multiplies the halves, so torch-pruning removes matching channels from both halves: ``amount=0.3``
removed 62.5% of that convolution, silently.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn

from lightning_spiral.models import build_model
from lightning_spiral.pruning import prune
from lightning_spiral.pruning.coupling import CoupledPruningWarning, allowed_fraction, expected_fraction

CIFAR = (3, 32, 32)
#: the start of the warning's text, to scope warning filters to it
MESSAGE = r"Pruning with amount=.* removed far more channels"


class GatedBlock(nn.Module):
    """stem -> gate (32 channels, split in two and multiplied: a * sigmoid(b)) -> proj -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.gate = nn.Conv2d(16, 32, 3, padding=1)
        self.proj = nn.Conv2d(16, 16, 1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.gate(torch.relu(self.stem(x))).chunk(2, 1)
        return self.head(self.proj(a * torch.sigmoid(b)).mean((2, 3)))


def _example() -> torch.Tensor:
    return torch.randn(1, 3, 16, 16)


def test_gated_block_warns_once_naming_the_layer_its_widths_and_the_fix() -> None:
    model = GatedBlock()
    with pytest.warns(UserWarning, match=r"'gate': 32 -> 12 channels, 62.5% removed where 31.2% was expected") as record:
        prune(model, _example(), amount=0.3)
    assert model.gate.out_channels == 12  # the warning reports what happened; it does not change it
    (warning,) = [w for w in record if issubclass(w.category, CoupledPruningWarning)]
    assert "`ignored_layers=['head', 'gate']`" in str(warning.message)  # the classifier stays ignored
    assert "`layer_amounts={'gate': 0.15}`" in str(warning.message)
    assert warning.filename == __file__  # stacklevel points at the caller of prune


@pytest.mark.parametrize(
    "fix", [{"ignored_layers": ["gate", "head"]}, {"layer_amounts": {"gate": 0.15}}, {"global_pruning": True}]
)
def test_the_suggested_fixes_and_global_ranking_are_silent(fix: dict) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=MESSAGE)
        prune(GatedBlock(), _example(), amount=0.3, **fix)


def test_a_target_search_warns_for_the_final_pruning_only() -> None:
    with pytest.warns(CoupledPruningWarning, match=r"'gate': 32 -> \d+ channels") as record:
        prune(GatedBlock(), _example(), target_macs_ratio=0.5)
    assert len([w for w in record if issubclass(w.category, CoupledPruningWarning)]) == 1


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("small_cnn", {}), ("resnet20", {}), ("vgg11_bn", {}), ("resnet20", {"round_to": 8}), ("small_cnn", {"amount": 0.7})],
)
def test_standard_models_prune_silently(name: str, kwargs: dict) -> None:
    model = build_model(name, num_classes=10, input_shape=CIFAR)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=MESSAGE)
        prune(model, torch.randn(1, *CIFAR), **{"amount": 0.3, **kwargs})


def test_expected_fraction_follows_torch_pruning_rounding() -> None:
    assert expected_fraction(16, 0.3, None) == pytest.approx(5 / 16)  # 16 - int(11.2) channels
    assert expected_fraction(16, 0.3, 8) == pytest.approx(0.5)  # 11 kept, rounded down to 8
    assert expected_fraction(4, 0.9, 8) == 0.0  # never below round_to (or the width) kept
    assert allowed_fraction(0.3125) == pytest.approx(0.51875)  # 1.5 e + 0.05
    assert allowed_fraction(0.7) == pytest.approx(0.85)  # large amounts: half of what should stay
