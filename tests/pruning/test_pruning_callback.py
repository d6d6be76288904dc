"""PruningCallback: prunes in setup before optimizers, works on SpiralModule and plain modules."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F

from conftest import quiet_trainer
from lightning_spiral import KDLoss, PruningCallback, SpiralModule
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.measure import count_macs, count_params
from lightning_spiral.models import build_model
from user_project import LitAutoEncoder


def test_prunes_the_student_before_the_optimizer_is_built(tiny_data) -> None:
    student = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    teacher = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    params, macs = count_params(student), count_macs(student, torch.randn(1, 1, 8, 8))
    callback = PruningCallback(amount=0.5, verbose=0)
    module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10)
    trainer = quiet_trainer(max_epochs=2, callbacks=[callback])
    before = [p.clone() for p in student.parameters()]
    trainer.fit(module, datamodule=tiny_data)
    assert count_params(module.student) < 0.5 * params
    assert count_macs(module.student, torch.randn(1, 1, 8, 8)) < 0.5 * macs
    assert count_params(teacher) == params  # only the student is pruned
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimized == {id(p) for p in module.student.parameters()}  # no dead tensors in the optimizer
    assert [p.shape for p in before] != [p.shape for p in module.student.parameters()]
    assert callback.state_dict()["pruned"] is True
    assert callback.summary["macs_after"] < callback.summary["macs_before"]


class DocsStyleClassifier(L.LightningModule):
    """A LightningModule written the way the Lightning docs write one."""

    def __init__(self) -> None:
        super().__init__()
        self.net = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_works_on_a_plain_lightning_module_by_attr(tiny_data) -> None:
    module = DocsStyleClassifier()
    params = count_params(module.net)
    trainer = quiet_trainer(max_epochs=1, callbacks=[PruningCallback(amount=0.3, attr="net", verbose=0)])
    trainer.fit(module, datamodule=tiny_data)
    assert count_params(module.net) < params
    assert module.net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_prunes_only_once_per_callback(tiny_data) -> None:
    module = DocsStyleClassifier()
    callback = PruningCallback(amount=0.3, attr="net", verbose=0)
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(module, datamodule=tiny_data)
    after_first = count_params(module.net)
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(module, datamodule=tiny_data)
    assert count_params(module.net) == after_first


def test_state_dict_round_trip() -> None:
    callback = PruningCallback(amount=0.3)
    callback.pruned = True
    restored = PruningCallback(amount=0.3)
    restored.load_state_dict(callback.state_dict())
    assert restored.pruned


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amount": 1.5}, r"`amount` must be a number in \(0, 1\), got 1.5"),
        ({"amount": -0.2}, r"`amount` must be .*got -0.2"),
        ({"amount": 0.3, "importance": "taylorr"}, r"`importance` must be one of \['l1', 'l2', 'bn_scale', 'taylor', 'fpgm', 'random'\], got 'taylorr'"),
        ({"amount": 0.3, "verbose": 3}, r"`verbose` must be one of \[0, 1, 2\], got 3"),
        ({"amount": 0.3, "example_input_shape": (3, 0, 32)}, r"`example_input_shape` must be the shape of one sample"),
        ({"amount": 0.3, "example_input": torch.zeros(1, 64), "example_input_shape": (64,)},
         r"Pass at most one of `example_input` and `example_input_shape`, got a tensor of shape \(1, 64\) and \(64,\)"),
        ({"amount": 0.3, "example_input": [0.0] * 64}, r"`example_input` must be a tensor batch \(N, ...\) with N >= 1 .*got list"),
        ({"amount": 0.3, "example_input": torch.zeros(0, 64)}, r"`example_input` must be a tensor batch .*got \(0, 64\)"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        PruningCallback(**kwargs)


def test_attr_that_is_not_a_module(tiny_data) -> None:
    module = DocsStyleClassifier()
    trainer = quiet_trainer(max_epochs=1, callbacks=[PruningCallback(amount=0.3, attr="missing", verbose=0)])
    with pytest.raises(SpiralConfigError, match=r"`attr` is 'missing', but DocsStyleClassifier.missing is not an nn.Module"):
        trainer.fit(module, datamodule=tiny_data)


def test_target_macs_ratio_per_stage(tiny_data) -> None:
    module = DocsStyleClassifier()
    example = torch.randn(1, 1, 8, 8)
    macs = count_macs(module.net, example)
    callback = PruningCallback(target_macs_ratio=0.5, attr="net", verbose=0)
    quiet_trainer(max_epochs=1, callbacks=[callback]).fit(module, datamodule=tiny_data)
    assert 0.45 <= count_macs(module.net, example) / macs <= 0.5
    assert 0 < callback.applied_amount < 1


def test_taylor_importance_uses_the_distillation_loss(tiny_data) -> None:
    student = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    teacher = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    params = count_params(student)
    callback = PruningCallback(amount=0.5, importance="taylor", taylor_batches=2, verbose=0)
    module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10)
    running_mean = student.features[0][1].running_mean.clone()
    quiet_trainer(max_epochs=1, limit_train_batches=0, callbacks=[callback]).fit(module, datamodule=tiny_data)
    assert count_params(module.student) < 0.5 * params
    assert all(p.grad is None for p in teacher.parameters())
    kept = module.student.features[0][1].running_mean
    assert kept.shape[0] < running_mean.shape[0]  # pruned, and the look-ahead left BN statistics alone:
    assert all(any(torch.equal(v, w) for w in running_mean) for v in kept)


def test_taylor_importance_reaches_a_macs_target(tiny_data) -> None:
    # the target search prunes trial copies: they must carry the accumulated gradients
    student = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    teacher = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    example = torch.randn(1, 1, 8, 8)
    macs = count_macs(student, example)
    callback = PruningCallback(target_macs_ratio=0.4, importance="taylor", taylor_batches=2, verbose=0)
    module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10)
    quiet_trainer(max_epochs=1, limit_train_batches=1, callbacks=[callback]).fit(module, datamodule=tiny_data)
    assert 0.36 <= count_macs(module.student, example) / macs <= 0.4


@pytest.mark.parametrize(
    ("kwargs", "array", "source"),
    [
        ({}, None, r"the first training batch"),
        ({}, torch.zeros(2, 1, 8, 8), r"LitAutoEncoder\.example_input_array"),
        ({"example_input_shape": (1, 8, 8)}, None, r"`example_input_shape`"),
    ],
)
def test_an_example_input_the_network_cannot_take_is_refused_before_pruning(tiny_data, kwargs, array, source) -> None:
    module = LitAutoEncoder()  # its training_step flattens (N, 1, 8, 8) batches: the network takes (N, 64)
    module.example_input_array = array
    trainer = quiet_trainer(max_epochs=1, callbacks=[PruningCallback(amount=0.5, attr="autoencoder", verbose=0, **kwargs)])
    with pytest.raises(SpiralConfigError, match=r"AutoEncoder cannot take the example input of shape \(1, 1, 8, 8\) from "
                       + source + r" \(RuntimeError: mat1 and mat2 shapes cannot be multiplied .*\)\. If your `training_step` "
                       r"reshapes batches .* `example_input=` .* `example_input_shape=`, or set `example_input_array`"):
        trainer.fit(module, datamodule=tiny_data)
    assert module.autoencoder.encoder[0].out_features == 48  # refused before any pruning


@pytest.mark.parametrize("how", ["example_input", "example_input_shape", "example_input_array"])
def test_an_example_input_the_network_takes_prunes_it(tiny_data, how: str) -> None:
    module = LitAutoEncoder()
    kwargs = {"example_input": torch.randn(3, 64), "example_input_shape": (64,)}
    if how == "example_input_array":
        module.example_input_array = torch.randn(2, 64)
    options = {how: kwargs[how]} if how in kwargs else {}
    callback = PruningCallback(amount=0.5, attr="autoencoder", verbose=0, **options)
    quiet_trainer(max_epochs=1, limit_train_batches=1, callbacks=[callback]).fit(module, datamodule=tiny_data)
    assert module.autoencoder.encoder[0].out_features == 24  # half of 48
    assert callback.summary["macs_after"] < callback.summary["macs_before"]


def test_counting_macs_with_an_input_the_network_cannot_take_says_so() -> None:
    with pytest.raises(SpiralConfigError, match=r"`example_inputs` of shape \(1, 1, 8, 8\) do not run through AutoEncoder "
                       r"\(RuntimeError: mat1 and mat2 shapes cannot be multiplied .*\), so its MACs cannot be counted"):
        count_macs(LitAutoEncoder().autoencoder, torch.zeros(1, 1, 8, 8))
