"""Golden-number tests of the logit distillation losses: values checked against plain numpy math."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_spiral.distill import KDLoss, LogitMSELoss
from lightning_spiral.errors import SpiralConfigError

STUDENT = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
TEACHER = torch.tensor([[3.0, 0.2, -0.5], [0.0, 1.5, 1.0]])
TARGET = torch.tensor([0, 2])


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _reference_kd(s: np.ndarray, t: np.ndarray, y: np.ndarray, temperature: float, alpha: float) -> float:
    p_s, p_t = _softmax(s / temperature), _softmax(t / temperature)
    kl = float(np.sum(p_t * (np.log(p_t) - np.log(p_s))) / len(s))  # batchmean
    ce = float(-np.mean(np.log(_softmax(s)[np.arange(len(s)), y])))
    return (1 - alpha) * ce + alpha * temperature**2 * kl


@pytest.mark.parametrize(("temperature", "alpha"), [(1.0, 0.5), (4.0, 0.9), (2.0, 0.0), (8.0, 1.0)])
def test_kd_matches_reference(temperature: float, alpha: float) -> None:
    value = KDLoss(temperature=temperature, alpha=alpha)(STUDENT, TEACHER, TARGET).item()
    expected = _reference_kd(STUDENT.double().numpy(), TEACHER.double().numpy(), TARGET.numpy(), temperature, alpha)
    assert value == pytest.approx(expected, abs=1e-6)


def test_kd_hand_computed_two_class_case() -> None:
    # student [0, 0] -> p_s = (1/2, 1/2); teacher [ln 3, 0] at T=1 -> p_t = (3/4, 1/4)
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2); CE(label 0) = ln 2; alpha = 0.5
    student, teacher = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    expected = 0.5 * math.log(2) + 0.5 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert KDLoss(temperature=1.0, alpha=0.5)(student, teacher, torch.tensor([0])).item() == pytest.approx(expected, abs=1e-6)


def test_kd_is_zero_when_student_equals_teacher_and_alpha_one() -> None:
    assert KDLoss(temperature=4.0, alpha=1.0)(TEACHER, TEACHER, TARGET).item() == pytest.approx(0.0, abs=1e-7)


def test_mse_matches_reference() -> None:
    s, t = STUDENT.double().numpy(), TEACHER.double().numpy()
    mse = float(np.mean((s - t) ** 2))
    ce = float(-np.mean(np.log(_softmax(s)[np.arange(2), TARGET.numpy()])))
    assert LogitMSELoss(alpha=1.0)(STUDENT, TEACHER, TARGET).item() == pytest.approx(mse, abs=1e-6)
    assert LogitMSELoss(alpha=0.25)(STUDENT, TEACHER, TARGET).item() == pytest.approx(0.75 * ce + 0.25 * mse, abs=1e-6)


@pytest.mark.parametrize("loss", [KDLoss(temperature=4.0, alpha=0.9), LogitMSELoss(alpha=0.5)])
def test_loss_is_float32_under_bf16_autocast(loss: torch.nn.Module) -> None:
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        value = loss(STUDENT.bfloat16(), TEACHER.bfloat16(), TARGET)
    assert value.dtype == torch.float32
    expected = loss(STUDENT.bfloat16().float(), TEACHER.bfloat16().float(), TARGET)
    assert value.item() == pytest.approx(expected.item(), abs=1e-6)


def test_gradient_reaches_student_only() -> None:
    student, teacher = STUDENT.clone().requires_grad_(True), TEACHER.clone().requires_grad_(True)
    KDLoss()(student, teacher.detach(), TARGET).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: KDLoss(temperature=0.0), r"`temperature` must be a finite number > 0, got 0.0"),
        (lambda: KDLoss(temperature=-1), r"`temperature` must be a finite number > 0, got -1"),
        (lambda: KDLoss(alpha=1.5), r"`alpha` must be a number in \[0, 1\], got 1.5"),
        (lambda: LogitMSELoss(alpha=-0.1), r"`alpha` must be a number in \[0, 1\], got -0.1"),
    ],
)
def test_bad_arguments_are_rejected(build, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        build()


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(SpiralConfigError, match=r"same shape, got student \(2, 3\) and teacher \(2, 4\)"):
        KDLoss()(STUDENT, torch.zeros(2, 4), TARGET)


def test_repr_shows_the_formula() -> None:
    assert "T^2 * KL" in repr(KDLoss(temperature=3.0, alpha=0.7))


@pytest.mark.parametrize("shape", [(4, 1), (2, 3, 4, 4), (4, 64)], ids=["regression", "segmentation", "reconstruction"])
def test_logit_mse_takes_any_output_shape_and_no_labels(shape: tuple[int, ...]) -> None:
    student, teacher = torch.full(shape, 0.5), torch.full(shape, -1.5)
    assert LogitMSELoss(alpha=1.0)(student, teacher, None).item() == pytest.approx(4.0)
    assert LogitMSELoss(alpha=1.0)(student, teacher, torch.randn(shape)).item() == pytest.approx(4.0)  # float targets ignored


def test_logit_mse_with_a_label_term_needs_labels() -> None:
    with pytest.raises(SpiralConfigError, match=r"`alpha`=0.5 mixes in label cross-entropy, which needs labels as `target`, got None"):
        LogitMSELoss(alpha=0.5)(torch.zeros(2, 3), torch.zeros(2, 3), None)
