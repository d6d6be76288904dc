"""MaskPruningCallback: gradual unstructured masks on the student only, permanent at the end."""

from __future__ import annotations

import pytest
import torch

from conftest import quiet_trainer
from lightning_spiral import KDLoss, SpiralModule
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.measure import sparsity
from lightning_spiral.models import build_model
from lightning_spiral.pruning import MaskPruningCallback


def test_schedule_is_cubic_and_the_increments_compound_to_the_target() -> None:
    callback = MaskPruningCallback(amount=0.9, pruning_epochs=3)
    remaining = 1.0
    for epoch in range(5):
        remaining *= 1 - callback.amount_at_epoch(epoch)
        assert 1 - remaining == pytest.approx(callback.sparsity_after_epoch(min(epoch, 2)))
    assert 1 - remaining == pytest.approx(0.9)
    assert callback.sparsity_after_epoch(0) > 0.9 / 3  # front-loaded


def test_masks_reach_the_amount_on_the_student_only_and_are_permanent(tiny_data) -> None:
    student = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    teacher = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    callback = MaskPruningCallback(amount=0.75, pruning_epochs=2, verbose=0)
    module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10)
    quiet_trainer(max_epochs=3, callbacks=[callback]).fit(module, datamodule=tiny_data)
    assert sparsity(student) == pytest.approx(0.75, abs=0.01)
    assert sparsity(teacher) == 0.0
    assert not any(name.endswith("_mask") for name, _ in student.named_buffers())  # permanent: no masks left
    assert callback.summary["sparsity"] == pytest.approx(0.75, abs=0.01)
    assert set(callback.summary["layers"]) == {n for n, m in student.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    assert student(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amount": 1.0}, r"`amount` must be a number in \(0, 1\), got 1.0. It is the final sparsity"),
        ({"amount": 0.5, "pruning_epochs": 0}, r"`pruning_epochs` must be an integer >= 1, got 0. None ramps"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        MaskPruningCallback(**kwargs)


def test_bn_sparsity_drives_student_gammas_down_and_leaves_the_teacher(tiny_data) -> None:
    from lightning_spiral.pruning.bn_sparsity import BNSparsityCallback

    def gamma_l1(weight: float | None) -> tuple[float, float]:
        torch.manual_seed(0)
        student = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
        teacher = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
        callbacks = [] if weight is None else [BNSparsityCallback(weight=weight)]
        module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10)
        quiet_trainer(max_epochs=2, callbacks=callbacks).fit(module, datamodule=tiny_data)
        gammas = lambda net: sum(m.weight.abs().sum().item() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
        return gammas(student), gammas(teacher)

    plain_student, plain_teacher = gamma_l1(None)
    sparse_student, sparse_teacher = gamma_l1(0.5)  # large: 8 SGD steps only
    assert sparse_student < 0.9 * plain_student
    assert sparse_teacher == plain_teacher


def test_bn_sparsity_weight_must_be_positive() -> None:
    from lightning_spiral.pruning.bn_sparsity import BNSparsityCallback

    with pytest.raises(SpiralConfigError, match=r"`weight` must be a finite number > 0, got 0. It is the L1 coefficient"):
        BNSparsityCallback(weight=0)
