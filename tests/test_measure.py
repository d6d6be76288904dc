"""Tests of lightning_spiral.measure: hand-counted params and MACs, latency side effects, sparsity."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch_pruning as tp

from lightning_spiral.atomic import atomic_write_bytes
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.measure import (
    ModelMeasurement,
    count_macs,
    count_params,
    file_size,
    measure_latency,
    measure_model,
    sparsity,
)


def _tiny_cnn() -> nn.Sequential:
    # conv 8*3*3*3 + 8 = 224, bn 2*8 = 16, linear 8*10 + 10 = 90 -> 330 parameters
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


def test_count_params_matches_hand_count() -> None:
    assert count_params(_tiny_cnn()) == 330


def test_count_params_includes_frozen_parameters() -> None:
    model = _tiny_cnn()
    model[0].requires_grad_(False)
    assert count_params(model) == 330


@pytest.mark.parametrize(
    ("bias", "expected"),
    [
        (False, 8 * 3 * 3 * 3 * 8 * 8),  # C_out * C_in * k * k * H_out * W_out = 13,824
        (True, 8 * 3 * 3 * 3 * 8 * 8 + 8 * 8 * 8),  # + one bias add per output element = 14,336
    ],
)
def test_count_macs_conv2d_matches_formula(bias: bool, expected: int) -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=bias)
    assert count_macs(conv, torch.randn(1, 3, 8, 8)) == expected


@pytest.mark.parametrize(("bias", "expected"), [(False, 10 * 5), (True, 10 * 5 + 5)])
def test_count_macs_linear_matches_formula(bias: bool, expected: int) -> None:
    assert count_macs(nn.Linear(10, 5, bias=bias), torch.randn(1, 10)) == expected


def test_count_macs_is_per_sample() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, torch.randn(4, 3, 8, 8)) == count_macs(conv, torch.randn(1, 3, 8, 8))


def test_count_macs_falls_after_removing_a_channel() -> None:
    model = _tiny_cnn()
    example = torch.randn(1, 3, 8, 8)
    before = count_macs(model, example)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    graph.get_pruning_group(model[0], tp.prune_conv_out_channels, idxs=[0]).prune()
    after = count_macs(model, example)
    assert model[0].out_channels == 7
    # conv (weights + bias): 8*64 per channel * (27 + 1); bn 2*64; relu 64; pool 64; linear 10
    assert before - after == 64 * 28 + 2 * 64 + 64 + 64 + 10


def test_count_macs_leaves_model_untouched() -> None:
    model = _tiny_cnn().train()
    model[1].eval()  # a frozen BatchNorm inside a training model: mixed modes must survive
    state_before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model, torch.randn(2, 3, 8, 8))
    assert [m.training for m in model.modules()] == [True, True, False, True, True, True, True]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert model.state_dict().keys() == state_before.keys()
    assert all(torch.equal(v, state_before[k]) for k, v in model.state_dict().items())
    assert not any(name.startswith("__") for m in model.modules() for name in vars(m))


def test_measure_latency_positive_and_restores_state() -> None:
    model = _tiny_cnn().train()
    previous_threads = torch.get_num_threads()
    threads = 1 if previous_threads != 1 else 2
    latency = measure_latency(model, (3, 8, 8), batch_size=2, repeats=3, warmup=1, threads=threads)
    assert isinstance(latency, float) and latency > 0
    assert torch.get_num_threads() == previous_threads
    assert all(m.training for m in model.modules())


def test_measure_latency_channels_last_leaves_the_model_layout_alone() -> None:
    model = _tiny_cnn()
    weight = model[0].weight
    latency = measure_latency(model, (3, 8, 8), batch_size=2, repeats=2, warmup=0, threads=1, memory_format="channels_last")
    assert latency > 0
    assert model[0].weight is weight and weight.is_contiguous()  # timed on an NHWC copy
    assert measure_model(model, (3, 8, 8), repeats=1, warmup=0, threads=1, memory_format="channels_last").latency_ms_b64 > 0


def test_measure_latency_restores_state_when_the_model_fails() -> None:
    model = nn.Linear(4, 2).train()
    previous_threads = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        measure_latency(model, (5,), batch_size=1, repeats=1, warmup=0, threads=1)  # wrong width
    assert torch.get_num_threads() == previous_threads
    assert model.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_measure_latency_leaves_a_gpu_model_on_its_device() -> None:
    model = _tiny_cnn().cuda()
    assert measure_latency(model, (3, 8, 8), batch_size=1, repeats=2, warmup=0) > 0
    assert all(p.is_cuda for p in model.parameters())


def test_sparsity_dense_model_is_zero() -> None:
    assert sparsity(_tiny_cnn()) == 0.0
    assert sparsity(nn.ReLU()) == 0.0


def test_sparsity_half_zeroed_weights_is_half() -> None:
    model = _tiny_cnn()
    with torch.no_grad():
        model[0].weight[:4].zero_()  # 4 of 8 output filters
        model[5].weight[:5].zero_()  # 5 of 10 output rows
        model[0].bias.zero_()  # biases are not weights: ignored
    assert sparsity(model) == 0.5


def test_measure_model_collects_every_figure() -> None:
    model = _tiny_cnn()
    measured = measure_model(model, (3, 8, 8), repeats=2, warmup=0, threads=1)
    assert isinstance(measured, ModelMeasurement)
    assert measured.params == 330
    assert measured.macs == count_macs(model, torch.randn(1, 3, 8, 8))
    assert measured.latency_ms_b1 > 0 and measured.latency_ms_b64 > 0
    assert measured.sparsity == 0.0


def test_file_size(tmp_path) -> None:
    path = tmp_path / "blob.bin"
    atomic_write_bytes(path, b"x" * 1234)
    assert file_size(path) == 1234
    with pytest.raises(FileNotFoundError):
        file_size(tmp_path / "missing.bin")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, r"`batch_size` must be an integer >= 1, got 0"),
        ({"repeats": 0}, r"`repeats` must be an integer >= 1, got 0"),
        ({"warmup": -1}, r"`warmup` must be an integer >= 0, got -1"),
        ({"threads": 0}, r"`threads` must be an integer >= 1, got 0"),
        ({"threads": 1.5}, r"`threads` must be an integer >= 1, got 1.5"),
        ({"input_shape": ()}, r"`input_shape` must be a non-empty sequence of integers >= 1, got \(\)\. Give one sample's"),
        ({"input_shape": (3, 0)}, r"`input_shape` .* got \(3, 0\)"),
        ({"memory_format": "nhwc"}, r"`memory_format` must be one of \['contiguous', 'channels_last'\], got 'nhwc'"),
        ({"memory_format": "channels_last"},
         r"`input_shape` must be an image shape \(C, H, W\) with memory_format='channels_last', got \(4,\)\. Use memory_format="),
    ],
)
def test_measure_latency_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    arguments = {"input_shape": (4,), "batch_size": 1, **kwargs}
    with pytest.raises(SpiralConfigError, match=match):
        measure_latency(nn.Linear(4, 2), **arguments)


def test_measure_model_rejects_bad_input_shape() -> None:
    with pytest.raises(SpiralConfigError, match=r"`input_shape`"):
        measure_model(nn.Linear(4, 2), [], repeats=1, warmup=0)
