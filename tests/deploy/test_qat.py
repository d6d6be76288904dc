"""Fake quantization for QAT: ONNX Runtime's weight grid, straight-through gradients, clean removal."""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

from conftest import TinyDataModule, quiet_trainer
from lightning_spiral import KDLoss
from lightning_spiral.deploy import QuantizeSettings, add_fake_quant, remove_fake_quant
from lightning_spiral.deploy.stage import fine_tune_qat
from lightning_spiral.models import build_model


def _net() -> nn.Module:
    torch.manual_seed(0)
    return build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))


def test_baked_weights_lie_on_the_per_channel_int8_grid() -> None:
    net = add_fake_quant(_net())
    net(torch.randn(4, 1, 8, 8))
    plain = remove_fake_quant(net)
    for module in plain.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            weight = module.weight.detach().flatten(1)  # (out_channels, fan_in)
            steps = weight / (weight.abs().amax(dim=1, keepdim=True) / 127)
            torch.testing.assert_close(steps, steps.round(), atol=1e-3, rtol=0)
            assert not module._forward_pre_hooks and not hasattr(module, "input_fake_quant")


def test_original_is_untouched_and_gradients_flow_straight_through() -> None:
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fake = add_fake_quant(net)
    fake(torch.randn(8, 1, 8, 8)).sum().backward()
    grads = [p.grad for p in fake.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_activation_ranges_freeze_in_eval_mode() -> None:
    fake = add_fake_quant(_net())
    fake(torch.randn(8, 1, 8, 8))
    observer = next(m for m in fake.modules() if hasattr(m, "input_fake_quant")).input_fake_quant
    low, high = observer.low.clone(), observer.high.clone()
    fake.eval()(10 * torch.randn(8, 1, 8, 8))
    assert torch.equal(observer.low, low) and torch.equal(observer.high, high)


def test_fine_tuning_distills_and_returns_a_plain_model() -> None:
    data = TinyDataModule()
    teacher = _net().eval()
    settings = QuantizeSettings(kind="int8_qat", qat_epochs=1)
    tuned = fine_tune_qat(_net(), teacher, settings, datamodule=data, loss=KDLoss(temperature=4.0, alpha=0.9),
                          make_trainer=functools.partial(lambda epochs: quiet_trainer(max_epochs=epochs)))
    assert sorted(tuned.state_dict()) == sorted(_net().state_dict())
    assert not tuned.training
    assert tuned(torch.randn(2, 1, 8, 8)).shape == (2, 10)
