"""Feature distillation and mutual learning inside SpiralModule, with pruning and mixed precision."""

from __future__ import annotations

import copy

import lightning.pytorch as L
import pytest
import torch

from conftest import CountingTeacher, quiet_trainer
from lightning_spiral import PruningCallback, SpiralModule
from lightning_spiral.distill import AttentionTransferLoss, FitNetLoss, KDLoss, LabelCrossEntropy, WeightedSum
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models import build_model
from lightning_spiral.models.spec import spec_of


def _pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    return (build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)),
            build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)))


def test_feature_terms_train_after_pruning_under_bf16(tiny_data) -> None:
    student, teacher = _pair()
    loss = WeightedSum(
        weights={"ce": 0.1, "kd": 0.9, "at": 100.0, "hint": 1.0},
        losses={"ce": LabelCrossEntropy(), "kd": KDLoss(alpha=1.0), "at": AttentionTransferLoss("features.1"),
                "hint": FitNetLoss("features.3")},
    )
    module = SpiralModule(student, teacher, loss=loss, num_classes=10)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer = quiet_trainer(max_epochs=2, precision="bf16-mixed", callbacks=[PruningCallback(amount=0.5, verbose=0)])
    trainer.fit(module, datamodule=tiny_data)
    adapter = loss.losses["hint"].adapter
    assert adapter.in_channels == module.student.features[3][0].out_channels < adapter.out_channels == 64
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert id(adapter.weight) in optimized  # the adapter is trained with the student
    assert {"train/loss/ce", "train/loss/kd", "train/loss/at", "train/loss/hint"} <= set(trainer.callback_metrics)
    assert all(torch.isfinite(trainer.callback_metrics[f"train/loss/{n}"]) for n in ("ce", "kd", "at", "hint"))
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())
    assert not any(name.startswith("adapter") for name in module.student.state_dict())  # never saved with the student
    assert not module.student._forward_hooks and not module.student.features[3]._forward_hooks  # taps removed after fit
    assert spec_of(module.student).pruning_history


def test_mutual_learning_trains_the_teacher_in_its_own_group(tiny_data) -> None:
    student, teacher = _pair()
    before = [p.clone() for p in teacher.parameters()]
    module = SpiralModule(student, teacher, loss=KDLoss(alpha=0.5), num_classes=10, mutual=True, teacher_lr=0.01)
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(module, datamodule=tiny_data)
    groups = trainer.optimizers[0].param_groups
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(0.01)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in teacher.parameters()}
    assert any(not torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    assert "train/loss/teacher" in trainer.callback_metrics


def test_mutual_needs_logit_terms_only() -> None:
    student, teacher = _pair()
    with pytest.raises(SpiralConfigError, match=r"`mutual`=True needs a teacher and a loss of logit terms only"):
        SpiralModule(student, teacher, loss=AttentionTransferLoss("features.1"), mutual=True)


def test_unknown_feature_path_is_a_clear_error(tiny_data) -> None:
    student, teacher = _pair()
    module = SpiralModule(student, teacher, loss=AttentionTransferLoss("layer9"), num_classes=10)
    with pytest.raises(SpiralConfigError, match=r"Feature path 'layer9' is not a module of SmallCNN"):
        quiet_trainer(max_epochs=1).fit(module, datamodule=tiny_data)


def test_teacher_cache_skips_the_teacher_after_the_first_epoch(tiny_data) -> None:
    student, network = _pair()
    teacher = CountingTeacher(network)
    cached = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10, cache_teacher=True)
    quiet_trainer(max_epochs=3, limit_val_batches=0).fit(cached, datamodule=tiny_data)
    assert teacher.samples == len(tiny_data.x)  # one epoch of teacher forwards, then cache hits



def test_cached_and_uncached_training_give_the_same_student(tiny_data) -> None:
    student, teacher = _pair()
    twin = copy.deepcopy(student)
    for network, cache in ((student, True), (twin, False)):
        L.seed_everything(0, verbose=False)
        module = SpiralModule(network, teacher, loss=KDLoss(), num_classes=10, cache_teacher=cache)
        quiet_trainer(max_epochs=2, limit_val_batches=0).fit(module, datamodule=tiny_data)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(student.parameters(), twin.parameters()))


def test_teacher_cache_is_refused_with_random_augmentation(tiny_data) -> None:
    student, teacher = _pair()
    tiny_data.augment = True
    module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10, cache_teacher=True)
    with pytest.raises(SpiralConfigError, match=r"`cache_teacher`=True needs the same inputs every epoch"):
        quiet_trainer(max_epochs=1).fit(module, datamodule=tiny_data)


def test_teacher_cache_falls_back_with_a_warning_when_inputs_do_not_repeat(tiny_data) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    class NoisySamples(TensorDataset):
        def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
            x, y = super().__getitem__(index)
            return x + 0.01 * torch.randn_like(x), y  # fresh noise at every read

    class NoisyData(type(tiny_data)):
        def train_dataloader(self) -> DataLoader:  # random inputs, but no `augment` flag to tell
            return DataLoader(NoisySamples(self.x, self.y), batch_size=32)

    student, teacher = _pair()
    module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10, cache_teacher=True)
    with pytest.warns(UserWarning, match=r"Teacher outputs missed the cache in epoch 1"):
        quiet_trainer(max_epochs=3, limit_val_batches=0).fit(module, datamodule=NoisyData())
    assert module.distiller.cache is None
