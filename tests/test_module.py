"""SpiralModule: frozen teacher, student-only optimizer, shared step metrics, scheduler horizon."""

from __future__ import annotations

import functools

import pytest
import torch

from conftest import quiet_trainer
from lightning_spiral import KDLoss, SpiralModule
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models import build_model
from lightning_spiral.module import with_horizon


def _pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    make = functools.partial(build_model, "small_cnn", num_classes=10, input_shape=(1, 8, 8))
    return make(), make()


def test_teacher_is_frozen_and_gets_no_gradient(tiny_data) -> None:
    student, teacher = _pair()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10)
    quiet_trainer(max_epochs=1).fit(module, datamodule=tiny_data)
    assert not teacher.training
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    # frozen means frozen: weights *and* BatchNorm running statistics unchanged
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    optimizer = module.optimizers().optimizer
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in student.parameters()}


def test_student_learns_and_metrics_are_logged(tiny_data) -> None:
    student, teacher = _pair()
    module = SpiralModule(student, teacher, loss=KDLoss(alpha=0.5), num_classes=10)
    trainer = quiet_trainer(max_epochs=3)
    trainer.fit(module, datamodule=tiny_data)
    assert "train/loss_epoch" in trainer.callback_metrics
    val = trainer.validate(module, datamodule=tiny_data, verbose=False)[0]
    test = trainer.test(module, datamodule=tiny_data, verbose=False)[0]
    assert {"val/top1", "val/top5", "val/loss"} <= set(val)
    assert {"test/top1", "test/top5"} <= set(test)
    assert 0.0 <= val["val/top1"] <= val["val/top5"] <= 1.0


def test_without_teacher_it_trains_on_labels(tiny_data) -> None:
    student, _ = _pair()
    module = SpiralModule(student, num_classes=10)
    trainer = quiet_trainer(max_epochs=8)
    first = trainer.validate(module, datamodule=tiny_data, verbose=False)[0]["val/loss"]
    trainer.fit(module, datamodule=tiny_data)
    assert trainer.validate(module, datamodule=tiny_data, verbose=False)[0]["val/loss"] < first


def test_top5_only_with_more_than_five_classes() -> None:
    module = SpiralModule(torch.nn.Linear(4, 3), num_classes=3)
    assert list(module.val_metrics.keys()) == ["val/top1"]


def test_bf16_mixed_precision_fit(tiny_data) -> None:
    student, teacher = _pair()
    module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10)
    trainer = quiet_trainer(max_epochs=1, precision="bf16-mixed")
    trainer.fit(module, datamodule=tiny_data)
    assert torch.isfinite(trainer.callback_metrics["train/loss_epoch"])


def test_scheduler_horizon_is_filled_from_the_stage_epochs() -> None:
    factory = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert with_horizon(factory, 7)(optimizer).T_max == 7
    bound = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=3)
    assert with_horizon(bound, 7)(optimizer).T_max == 3


def test_bad_arguments() -> None:
    student, teacher = _pair()
    with pytest.raises(SpiralConfigError, match="`loss` is None but a `teacher` was given"):
        SpiralModule(student, teacher, loss=None)
    with pytest.raises(SpiralConfigError, match="`num_classes` must be an integer >= 2, got 1"):
        SpiralModule(student, num_classes=1)


class LogitsOutput(torch.nn.Module):
    """A network returning an object with ``.logits``, as Hugging Face classifiers do."""

    def __init__(self) -> None:
        super().__init__()
        self.network = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))

    def forward(self, x: torch.Tensor):
        return type("Output", (), {"logits": self.network(x)})()


def test_distillation_goes_through_the_shared_engine(tiny_data) -> None:
    teacher, loss = LogitsOutput(), KDLoss()
    module = SpiralModule(LogitsOutput(), teacher, loss=loss, num_classes=10)
    assert module.distiller.teacher is teacher and module.distiller.loss is loss and SpiralModule(LogitsOutput()).distiller is None
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2)
    trainer.fit(module, datamodule=tiny_data)
    assert torch.isfinite(trainer.callback_metrics["train/loss_epoch"]) and "val/top1" in trainer.callback_metrics


def test_cache_without_a_teacher_is_refused() -> None:
    with pytest.raises(SpiralConfigError, match=r"`cache_teacher`=True needs a `teacher` \(its outputs are what is cached\), got None"):
        SpiralModule(torch.nn.Linear(4, 3), num_classes=3, cache_teacher=True)


def test_a_teacher_rebuilt_from_a_checkpoint_is_frozen_without_a_loss(tiny_data, tmp_path) -> None:
    student, teacher = _pair()
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(SpiralModule(student, teacher, loss=KDLoss(), num_classes=10), datamodule=tiny_data)
    trainer.save_checkpoint(tmp_path / "spiral.ckpt")
    loaded = SpiralModule.load_from_checkpoint(tmp_path / "spiral.ckpt").train()  # the loss is not in the checkpoint
    assert loaded.distiller is None and not loaded.teacher.training
    assert not any(p.requires_grad for p in loaded.teacher.parameters())
