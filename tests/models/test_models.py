"""Tests of the model zoo: shapes, sizes, spec round trip, prunability, argument errors."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch_pruning as tp
from omegaconf import OmegaConf

from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models import MODEL_NAMES, ModelSpec, build_model, spec_of

CIFAR_SHAPE = (3, 32, 32)
SHAPES = {"small_cnn": (1, 8, 8), "torchvision.resnet18": CIFAR_SHAPE} | {
    name: CIFAR_SHAPE for name in MODEL_NAMES if name != "small_cnn"
}


def final_linear(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def test_model_names_are_the_builtins() -> None:
    assert MODEL_NAMES == ("small_cnn", "resnet20", "resnet56", "vgg11_bn", "vgg16_bn", "vgg_bn", "mobilenet_v2")


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_output_shape_and_spec(name: str) -> None:
    model = build_model(name, num_classes=7, input_shape=SHAPES[name]).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *SHAPES[name])).shape == (2, 7)
    assert spec_of(model) == ModelSpec(name=name, kwargs={"num_classes": 7}, input_shape=SHAPES[name])


@pytest.mark.parametrize(("name", "millions"), [("resnet20", 0.27), ("resnet56", 0.85), ("vgg11_bn", 9.2)])
def test_parameter_counts_match_the_papers(name: str, millions: float) -> None:
    model = build_model(name, num_classes=10, input_shape=CIFAR_SHAPE)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, rel=0.02)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("small_cnn", {"widths": (8, 16, 24)}),
        ("mobilenet_v2", {"width_mult": 0.5}),
        ("resnet56", {}),
        ("vgg16_bn", {}),
        ("torchvision.mobilenet_v3_small", {"weights": None}),
    ],
)
def test_spec_rebuilds_the_same_architecture(name: str, kwargs: dict) -> None:
    model = build_model(name, num_classes=5, input_shape=SHAPES.get(name, CIFAR_SHAPE), **kwargs)
    # Through JSON, as the saved spec travels.
    spec = ModelSpec.from_dict(json.loads(json.dumps(spec_of(model).to_dict())))
    twin = build_model(spec.name, input_shape=spec.input_shape, **spec.kwargs)
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    assert {key: value.shape for key, value in twin.state_dict().items()} == shapes
    assert spec_of(twin) == spec


@pytest.mark.parametrize("widths", [(8, 16), OmegaConf.create([8, 16])], ids=["tuple", "hydra-listconfig"])
def test_spec_stores_sequences_as_plain_lists(widths) -> None:
    model = build_model("small_cnn", num_classes=10, input_shape=[1, 8, 8], widths=widths)
    assert spec_of(model).kwargs == {"num_classes": 10, "widths": [8, 16]}
    assert type(spec_of(model).kwargs["widths"]) is list
    assert spec_of(model).input_shape == (1, 8, 8)


@pytest.mark.parametrize("name", ["small_cnn", "resnet20", "vgg11_bn", "mobilenet_v2", "torchvision.resnet18"])
def test_torch_pruning_halves_channels_and_keeps_outputs(name: str) -> None:
    model = build_model(name, num_classes=10, input_shape=SHAPES[name])
    example = torch.randn(1, *SHAPES[name])
    params_before = sum(p.numel() for p in model.parameters())
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5,
        ignored_layers=[final_linear(model)],
    )
    pruner.step()
    assert sum(p.numel() for p in model.parameters()) < 0.5 * params_before
    with torch.no_grad():
        assert model.eval()(torch.randn(2, *SHAPES[name])).shape == (2, 10)


@pytest.mark.parametrize(
    ("name", "num_classes", "input_shape", "kwargs", "match"),
    [
        ("resnet21", 10, CIFAR_SHAPE, {}, r"`name` must be one of \['small_cnn', .*\], 'torchvision.<name>' or 'hf.<bert\|gpt2\|vit>', got 'resnet21'"),
        ("torch.nn.Linear", 10, CIFAR_SHAPE, {}, r"`name` must be one of .* got 'torch.nn.Linear'"),
        ("torchvision.fasterrcnn_resnet50_fpn", 10, CIFAR_SHAPE, {}, r"torchvision classification model .* got 'torchvision.fasterrcnn"),
        ("resnet20", 1, CIFAR_SHAPE, {}, r"`num_classes` must be an integer >= 2, got 1"),
        ("resnet20", 10.0, CIFAR_SHAPE, {}, r"`num_classes` must be an integer >= 2, got 10.0"),
        ("resnet20", 10, (32, 32), {}, r"`input_shape` must be 3 integers >= 1 \(C, H, W\), got \(32, 32\)"),
        ("resnet20", 10, (3, 0, 32), {}, r"`input_shape` must be 3 integers >= 1 .* got \(3, 0, 32\)"),
        ("vgg11_bn", 10, (1, 8, 8), {}, r"`input_shape` must be \(C, H, W\) with H and W >= 32 for model 'vgg11_bn', got \(1, 8, 8\)"),
        ("resnet20", 10, CIFAR_SHAPE, {"widht": 2}, r"Unknown keyword arguments \['widht'\] for model 'resnet20'; it accepts \[\]"),
        ("small_cnn", 10, (1, 8, 8), {"in_channels": 1}, r"Unknown keyword arguments \['in_channels'\] .* accepts \['widths'\]"),
        ("small_cnn", 10, (1, 8, 8), {"widths": [8]}, r"`widths` must be a sequence of at least 2 integers >= 1, got \[8\]"),
        ("small_cnn", 10, (1, 8, 8), {"widths": torch.tensor([8, 8])}, r"`widths` must be a plain JSON value .* got Tensor"),
        ("mobilenet_v2", 10, CIFAR_SHAPE, {"width_mult": 0}, r"`width_mult` must be a finite number > 0, got 0"),
        ("torchvision.resnet18", 10, (1, 32, 32), {}, r"`input_shape\[0\]` must be 3 for torchvision models, got 1"),
        (
            "torchvision.resnet18", 10, CIFAR_SHAPE, {"weights": "IMAGENET"},
            r"`weights` must be None or one of \['IMAGENET1K_V1', 'DEFAULT'\] \(the weights of 'torchvision.resnet18'\), got 'IMAGENET'",
        ),
        ("torchvision.resnet18", 10, CIFAR_SHAPE, {"weights": "DEFAULT"}, r"`num_classes` must be 1000 with `weights`='DEFAULT' .* got 10"),
    ],
)
def test_bad_arguments_raise_config_errors(name, num_classes, input_shape, kwargs, match) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        build_model(name, num_classes=num_classes, input_shape=input_shape, **kwargs)


def test_vgg_bn_matches_the_facts_calibration_teacher() -> None:
    net = build_model("vgg_bn", num_classes=10, input_shape=(3, 32, 32))
    assert sum(p.numel() for p in net.parameters()) == 585_450  # FACTS.md: 0.59M params, 43.8M MACs
    with pytest.raises(SpiralConfigError, match=r"`config` must be a non-empty list of conv widths \(integers >= 1\) and 'M' max-pools, got \[16, 'X'\]"):
        build_model("vgg_bn", num_classes=10, input_shape=(3, 32, 32), config=[16, "X"])
