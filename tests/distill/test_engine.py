"""The distillation engine alone: output selection, golden loss values, freezing, taps, cache, adapters."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from lightning_spiral.distill import FitNetLoss, KDLoss, LabelCrossEntropy, LogitMSELoss, WeightedSum
from lightning_spiral.distill.engine import Distiller, NetworkCall, select_output
from lightning_spiral.errors import SpiralConfigError

STUDENT = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
TEACHER = torch.tensor([[1.0, 0.0, -1.0], [3.0, 2.0, 1.0]])
TARGET = torch.tensor([0, 2])


@dataclasses.dataclass
class ModelOutput:
    """Like a Hugging Face output: attributes, one of them ``logits``."""

    loss: torch.Tensor | None
    logits: torch.Tensor


class Fixed(nn.Module):
    """A 'teacher' that returns ``TEACHER`` wrapped as ``wrap`` says, whatever its input."""

    def __init__(self, wrap=lambda t: t) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.wrap = wrap

    def forward(self, x: torch.Tensor):
        return self.wrap(TEACHER * self.scale)


@pytest.mark.parametrize(
    ("output", "outputs"),
    [
        ({"loss": torch.tensor(0.0), "logits": STUDENT}, None),
        ({"main": STUDENT, "aux": torch.zeros(2)}, "main"),
        ((torch.zeros(2, 5), STUDENT), 1),
        ([STUDENT, torch.zeros(2, 5)], None),
        (ModelOutput(None, STUDENT), None),
        (ModelOutput(torch.tensor(1.0), STUDENT), "logits"),
        (ModelOutput(None, STUDENT), lambda out: out.logits),
        (STUDENT, "logits"),  # a tensor is used as it is
    ],
    ids=["dict-default", "dict-key", "tuple-index", "list-default", "object-default", "object-name", "function", "tensor"],
)
def test_select_output(output, outputs) -> None:
    assert select_output(output, outputs) is STUDENT


@pytest.mark.parametrize(
    ("output", "outputs", "match"),
    [
        ({"main": STUDENT}, None, r"`outputs`=None cannot select a tensor from a network output of type dict \(found NoneType\)"),
        ((STUDENT,), 3, r"`outputs`=3 cannot select a tensor from a network output of type tuple"),
        (ModelOutput(None, STUDENT), "loss", r"`outputs`='loss' .* of type ModelOutput \(found NoneType\)\. Allowed: None"),
    ],
)
def test_select_output_names_what_it_found(output, outputs, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        select_output(output, outputs)


def test_bad_selector_is_refused_at_construction() -> None:
    with pytest.raises(SpiralConfigError, match=r"`outputs` must be None \(a tensor as is; .* got 1.5"):
        Distiller(Fixed(), KDLoss(), outputs=1.5)


def test_golden_terms_through_a_structured_teacher() -> None:
    loss = WeightedSum({"ce": 0.1, "kd": 0.9}, {"ce": LabelCrossEntropy(), "kd": KDLoss(temperature=2.0, alpha=1.0)})
    distiller = Distiller(Fixed(lambda t: {"logits": t}), loss)
    total, terms = distiller.compute({"logits": STUDENT}, torch.zeros(2, 4), TARGET)
    assert total.item() == pytest.approx(0.79275060, abs=1e-6)
    assert {name: value.item() for name, value in terms.items()} == pytest.approx({"ce": 0.75310910, "kd": 0.79715526}, abs=1e-6)
    total, _ = Distiller(Fixed(lambda t: (torch.zeros(1), t)), KDLoss(temperature=4.0, alpha=0.9), outputs=1).compute(
        (torch.zeros(1), STUDENT), torch.zeros(2, 4), TARGET)
    assert total.item() == pytest.approx(0.81683582, abs=1e-6)


def test_bf16_outputs_are_compared_in_float32() -> None:
    distiller = Distiller(Fixed(lambda t: t.bfloat16()), LogitMSELoss())
    total, _ = distiller.compute(STUDENT.bfloat16(), torch.zeros(2, 4), None)
    assert total.dtype == torch.float32 and total.item() == pytest.approx(((STUDENT - TEACHER) ** 2).mean().item())


def test_frozen_teacher_gets_no_gradient_and_a_mutual_one_does() -> None:
    frozen, trained = Fixed(), Fixed()
    Distiller(frozen, KDLoss()).freeze_teacher()
    Distiller(trained, KDLoss(), frozen=False).freeze_teacher()
    assert not frozen.training and not frozen.scale.requires_grad
    assert trained.training and trained.scale.requires_grad
    student = STUDENT.clone().requires_grad_()
    total, _ = Distiller(frozen, KDLoss()).compute(student, torch.zeros(2, 4), TARGET)
    total.backward()
    assert student.grad is not None and frozen.scale.grad is None
    assert Distiller(trained, KDLoss(), frozen=False).teacher_output(torch.zeros(2, 4)).requires_grad


def test_cache_serves_repeated_inputs_and_refuses_what_it_cannot_key() -> None:
    teacher = Fixed()
    distiller = Distiller(teacher, KDLoss(), cache_teacher=True)
    distiller.attach(nn.Identity())
    x = torch.randn(2, 4)
    first = distiller.teacher_output(x)
    teacher.scale.data.fill_(5.0)  # a changed teacher is not asked again for a cached input
    assert torch.equal(distiller.teacher_output(x), first) and distiller.cache.hits == 2
    match = r"`cache_teacher`=True keys the cache by the network's input tensor, .* 1 positional and \['mask'\]"
    with pytest.raises(SpiralConfigError, match=match):
        distiller.teacher_output(NetworkCall((x,), {"mask": x}))


def test_cache_needs_a_frozen_teacher_and_logit_terms() -> None:
    with pytest.raises(SpiralConfigError, match=r"`cache_teacher`=True needs a frozen teacher and a loss of logit terms only .* \['0'\]"):
        Distiller(Fixed(), FitNetLoss("0"), cache_teacher=True)
    with pytest.raises(SpiralConfigError, match=r"`cache_teacher`=True needs a frozen teacher .* a teacher that is not frozen"):
        Distiller(Fixed(), KDLoss(), cache_teacher=True, frozen=False)


def test_prepare_builds_adapters_in_eval_mode_and_close_removes_taps() -> None:
    student = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)).train()
    teacher = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    distiller = Distiller(teacher, FitNetLoss("1"))
    distiller.freeze_teacher()
    distiller.attach(student)
    before = student[1].running_mean.clone()
    distiller.prepare(student, torch.randn(8, 4), None)
    adapter = distiller.loss.adapter
    assert (adapter.in_features, adapter.out_features) == (3, 5)
    assert student.training and torch.equal(student[1].running_mean, before)  # BatchNorm statistics untouched
    x = torch.randn(8, 4)
    total, terms = distiller.compute(student(x), x, None)
    assert total > 0 and list(terms) == ["distill"]
    distiller.close()
    assert not student[1]._forward_hooks and not teacher[1]._forward_hooks
