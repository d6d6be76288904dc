"""Function matching: mixed batches, the teacher on the student's own mixed images, label terms mixed alike, refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import quiet_trainer
from docs_style import LitClassifier
from lightning_spiral import DistillationCallback, KDLoss
from lightning_spiral.distill.engine import Distiller
from lightning_spiral.distill.mixing import MixedBatch, mix_batch, with_inputs
from lightning_spiral.errors import SpiralConfigError


def distinct_images(n: int = 6) -> torch.Tensor:
    """Sample i is the constant image i: where each pixel came from can be read back."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 8, 8).clone()


def test_mixup_blends_with_a_permutation_and_leaves_the_batch_alone() -> None:
    torch.manual_seed(0)
    x = distinct_images()
    mixed = mix_batch(x, "mixup", alpha=1.0)
    assert torch.allclose(mixed.inputs, mixed.lam * x + (1 - mixed.lam) * x[mixed.permutation])
    assert torch.equal(x, distinct_images())


def test_cutmix_pastes_one_box_and_lam_is_the_area_kept() -> None:
    torch.manual_seed(3)
    x = distinct_images()
    for _ in range(5):
        mixed = mix_batch(x, "cutmix", alpha=1.0)
        own = (mixed.inputs == x).all(dim=1).float()  # (N, H, W): pixels still the sample's own
        pasted = (mixed.inputs == x[mixed.permutation]).all(dim=1).float()
        moved = mixed.permutation != torch.arange(len(x))
        assert moved.any()
        assert torch.all((own + pasted)[moved] == 1)  # every pixel is its own or its partner's
        assert torch.allclose(own[moved].mean(dim=(1, 2)), torch.full((int(moved.sum()),), mixed.lam))


def test_the_loss_of_a_mixed_batch_mixes_its_label_term() -> None:
    torch.manual_seed(0)
    teacher, student = nn.Linear(4, 3), nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    engine = Distiller(teacher, KDLoss(temperature=2.0, alpha=0.5))
    mixed = MixedBatch(x, torch.tensor([4, 3, 2, 1, 0]), 0.3)
    total, _ = engine.compute(student(x), x, y, mixed=mixed)
    kd = KDLoss(temperature=2.0, alpha=1.0)(student(x), teacher(x), y)
    ce = 0.3 * F.cross_entropy(student(x), y) + 0.7 * F.cross_entropy(student(x), y[mixed.permutation])
    assert total.item() == pytest.approx(0.5 * kd.item() + 0.5 * ce.item(), rel=1e-5)


class InputsSeen(nn.Module):
    """Wraps a network and keeps every batch it was called on."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.net(x)


def test_student_and_teacher_see_the_same_mixed_images_in_a_fit(tiny_data) -> None:
    torch.manual_seed(0)
    teacher = InputsSeen(LitClassifier().net)
    model = LitClassifier()
    model.net = InputsSeen(model.net)
    raw = [x for x, _ in tiny_data.train_dataloader()]
    callback = DistillationCallback(teacher, KDLoss(alpha=0.9), mode="replace", mixing="cutmix", attr="net")
    quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, callbacks=[callback]).fit(model, datamodule=tiny_data)
    student_seen = [x for x in model.net.seen if x.shape[0] == tiny_data.batch_size][:2]
    assert len(student_seen) == 2 and len(teacher.seen) == 2
    for student_batch, teacher_batch in zip(student_seen, teacher.seen, strict=True):
        assert torch.equal(student_batch, teacher_batch)  # the same mixed view
        assert not any(torch.equal(student_batch, batch) for batch in raw)  # and not a raw batch


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(mixing="blend", mode="replace"), "`mixing` must be one of"),
    (dict(mixing="mixup"), "needs `mode`='replace'"),
    (dict(mixing="mixup", mode="replace", cache_teacher=True), "needs `mode`='replace' and `cache_teacher`=False"),
    (dict(mixing="mixup", mode="replace", mixing_alpha=0.0), "`mixing_alpha` must be"),
])
def test_mixing_options_are_refused_in_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(SpiralConfigError, match=message) as refused:
        DistillationCallback(nn.Linear(4, 2), **kwargs)
    assert "\n" not in str(refused.value)


def test_token_ids_and_odd_batches_are_refused() -> None:
    from lightning_spiral.distill.mixing import check_mixable

    with pytest.raises(SpiralConfigError, match="token ids and structured inputs cannot be blended"):
        check_mixable(torch.ones(4, 16, dtype=torch.long))
    with pytest.raises(SpiralConfigError, match="Got a dict batch"):
        with_inputs({"x": torch.ones(2)}, torch.zeros(2))
    assert with_inputs([torch.ones(2), torch.ones(2)], torch.zeros(2))[0].sum() == 0
