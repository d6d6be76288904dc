"""Golden-number tests of DKD, attention transfer, RKD, FitNets and the weighted sum.

Each value is checked against a separate, deliberately plain computation (numpy loops over the
definitions in the papers), not against the implementation's own formula.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lightning_spiral.distill import (
    AttentionTransferLoss, DKDLoss, FitNetLoss, KDLoss, LabelCrossEntropy, RKDLoss, WeightedSum,
)
from lightning_spiral.distill.combine import DistillationInputs, distillation_terms
from lightning_spiral.errors import SpiralConfigError

torch.manual_seed(0)
STUDENT = torch.randn(4, 5, dtype=torch.float64).float()
TEACHER = torch.randn(4, 5, dtype=torch.float64).float()
TARGET = torch.tensor([0, 3, 1, 4])


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * (np.log(p) - np.log(q))))


def reference_dkd(s, t, y, alpha, beta, temperature, ce_weight) -> float:
    total = 0.0
    for si, ti, yi in zip(s, t, y):
        ps, pt = softmax(si / temperature), softmax(ti / temperature)
        bs, bt = np.array([ps[yi], 1 - ps[yi]]), np.array([pt[yi], 1 - pt[yi]])
        others = [c for c in range(len(si)) if c != yi]
        qs, qt = softmax(si[others] / temperature), softmax(ti[others] / temperature)
        ce = -np.log(softmax(si)[yi])
        total += ce_weight * ce + temperature**2 * (alpha * kl(bt, bs) + beta * kl(qt, qs))
    return total / len(s)


@pytest.mark.parametrize(("alpha", "beta", "temperature", "ce_weight"), [(1.0, 8.0, 4.0, 1.0), (0.5, 2.0, 1.0, 0.0)])
def test_dkd_matches_reference(alpha, beta, temperature, ce_weight) -> None:
    value = DKDLoss(alpha=alpha, beta=beta, temperature=temperature, ce_weight=ce_weight)(STUDENT, TEACHER, TARGET).item()
    expected = reference_dkd(STUDENT.double().numpy(), TEACHER.double().numpy(), TARGET.numpy(), alpha, beta, temperature, ce_weight)
    assert value == pytest.approx(expected, abs=1e-5)


def test_attention_transfer_matches_reference() -> None:
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 6, 4, 4)
    expected = []
    for si, ti in zip(s.double().numpy(), t.double().numpy()):
        qs, qt = (si**2).mean(0).ravel(), (ti**2).mean(0).ravel()
        expected.append((qs / np.linalg.norm(qs) - qt / np.linalg.norm(qt)) ** 2)
    assert AttentionTransferLoss("x")(s, t).item() == pytest.approx(float(np.mean(expected)), abs=1e-6)


def smooth_l1(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(a - b)
    return float(np.mean(np.where(d < 1, 0.5 * d**2, d - 0.5)))


def test_rkd_matches_reference() -> None:
    s, t = torch.randn(5, 3), torch.randn(5, 7)
    S, T = s.double().numpy(), t.double().numpy()

    def distances(e):
        d = np.array([[np.linalg.norm(a - b) for b in e] for a in e])
        return d / d[d > 0].mean()

    def angles(e):
        out = []
        for i, j, k in itertools.product(range(len(e)), repeat=3):
            u, v = e[i] - e[j], e[k] - e[j]
            nu, nv = np.linalg.norm(u), np.linalg.norm(v)
            out.append(0.0 if nu == 0 or nv == 0 else float(u @ v / (nu * nv)))
        return np.array(out)

    expected = 25 * smooth_l1(distances(S), distances(T)) + 50 * smooth_l1(angles(S), angles(T))
    assert RKDLoss(None)(s, t).item() == pytest.approx(expected, abs=1e-5)


def test_fitnet_adapter_and_value() -> None:
    loss = FitNetLoss("layer")
    s, t = torch.randn(2, 3, 2, 2), torch.randn(2, 4, 2, 2)
    loss.prepare(s, t)
    weight = loss.adapter.weight.detach().double().numpy()[:, :, 0, 0]  # (4, 3)
    adapted = np.einsum("oc,nchw->nohw", weight, s.double().numpy())
    assert loss(s, t).item() == pytest.approx(float(np.mean((adapted - t.double().numpy()) ** 2)), abs=1e-6)
    loss(s, t).backward()
    assert loss.adapter.weight.grad is not None  # the adapter learns


def test_zero_where_student_equals_teacher() -> None:
    f = torch.randn(3, 4, 2, 2)
    assert AttentionTransferLoss("x")(f, f).item() == pytest.approx(0.0, abs=1e-9)
    assert RKDLoss(None)(STUDENT, STUDENT).item() == pytest.approx(0.0, abs=1e-6)
    assert DKDLoss(ce_weight=0.0)(STUDENT, STUDENT, TARGET).item() == pytest.approx(0.0, abs=1e-4)


def test_teacher_side_gets_no_gradient() -> None:
    t = TEACHER.clone().requires_grad_(True)
    s = STUDENT.clone().requires_grad_(True)
    RKDLoss(None)(s, t).backward()
    assert t.grad is None and s.grad is not None


def test_weighted_sum_adds_weighted_terms_and_shows_its_formula() -> None:
    features = torch.randn(4, 3, 2, 2)
    loss = WeightedSum(
        weights={"ce": 0.1, "kd": 0.9, "at": 1000.0},
        losses={"ce": LabelCrossEntropy(), "kd": KDLoss(alpha=1.0), "at": AttentionTransferLoss("block")},
    )
    inputs = DistillationInputs(STUDENT, TEACHER, TARGET, {"block": features}, {"block": features * 2})
    total, terms = distillation_terms(loss, inputs)
    expected = 0.1 * LabelCrossEntropy()(STUDENT, TEACHER, TARGET) + 0.9 * KDLoss(alpha=1.0)(STUDENT, TEACHER, TARGET)
    assert set(terms) == {"ce", "kd", "at"}
    assert total.item() == pytest.approx(expected.item() + 1000.0 * terms["at"].item(), abs=1e-6)
    assert repr(loss) == "WeightedSum(0.1 * ce + 0.9 * kd + 1000.0 * at)"


@pytest.mark.parametrize("loss", [DKDLoss(), AttentionTransferLoss("x"), RKDLoss(None)])
def test_float32_under_bf16_autocast(loss: torch.nn.Module) -> None:
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        if isinstance(loss, AttentionTransferLoss):
            value = loss(torch.randn(2, 3, 4, 4).bfloat16(), torch.randn(2, 3, 4, 4).bfloat16())
        elif isinstance(loss, RKDLoss):
            value = loss(STUDENT.bfloat16(), TEACHER.bfloat16())
        else:
            value = loss(STUDENT.bfloat16(), TEACHER.bfloat16(), TARGET)
    assert value.dtype == torch.float32


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: DKDLoss(beta=-1), r"`beta` must be a finite number >= 0, got -1"),
        (lambda: RKDLoss(None, angle_weight=-2), r"`angle_weight` must be a finite number >= 0, got -2"),
        (lambda: WeightedSum(weights={"a": 1.0}, losses={"b": KDLoss()}), r"must name the same non-empty set of terms"),
        (lambda: WeightedSum(weights={"a": 1.0}, losses={"a": torch.nn.MSELoss()}), r"Term 'a' must be a DistillationLoss or a FeatureLoss"),
        (lambda: FitNetLoss("x").prepare(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)), r"FitNetLoss needs .* equal N, H, W"),
    ],
)
def test_bad_arguments(build, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        build()
