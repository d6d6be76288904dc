"""register_model adds user builders to the one registry; ModelSpec records read old and new files strictly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_spiral.errors import ModelFormatError, SpiralConfigError
from lightning_spiral.io import load_model, save_model
from lightning_spiral.models import ModelSpec, build_model, register_model, registry, spec_of
from lightning_spiral.pruning import prune


@pytest.fixture(autouse=True)
def own_registry(monkeypatch) -> None:
    """Each test registers into a copy of the registry: names never leak into other tests' messages."""
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))


def tiny_mlp(num_classes: int, in_channels: int, hidden: int = 32) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def another_mlp(num_classes: int, in_channels: int) -> nn.Module:
    return tiny_mlp(num_classes, in_channels, hidden=8)


def make_builder() -> object:
    """A new function object with the same module and qualified name each call, as a re-run notebook cell defines."""

    def builder(num_classes: int, in_channels: int) -> nn.Module:
        return tiny_mlp(num_classes, in_channels)

    return builder


def test_a_registered_builder_builds_prunes_saves_and_loads(tmp_path) -> None:
    register_model("test_tiny_mlp", tiny_mlp)
    net = build_model("test_tiny_mlp", num_classes=3, input_shape=(1, 8, 8), hidden=16)
    assert spec_of(net) == ModelSpec(name="test_tiny_mlp", kwargs={"num_classes": 3, "hidden": 16}, input_shape=(1, 8, 8))
    prune(net, torch.randn(1, 1, 8, 8), amount=0.5)
    save_model(net, tmp_path / "mlp.pt")
    x = torch.randn(4, 1, 8, 8)
    loaded = load_model(tmp_path / "mlp.pt")
    assert loaded[1].out_features == 8 and torch.equal(loaded(x), net.eval()(x))


def test_registering_the_same_builder_again_is_allowed_and_another_is_refused() -> None:
    register_model("test_rerun", make_builder())
    register_model("test_rerun", make_builder())  # a re-run cell: same module and qualified name
    with pytest.raises(SpiralConfigError, match=r"`name` 'test_rerun' is already registered to .*make_builder.<locals>.builder, "
                       r"got .*another_mlp; choose another name"):
        register_model("test_rerun", another_mlp)


@pytest.mark.parametrize(
    ("name", "builder", "match"),
    [
        ("", tiny_mlp, r"`name` must be a non-empty str not starting with 'torchvision.', got ''"),
        (7, tiny_mlp, r"`name` must be a non-empty str .* got 7"),
        ("torchvision.mine", tiny_mlp, r"`name` must be .* not starting with 'torchvision.', got 'torchvision.mine'"),
        ("resnet20", tiny_mlp, r"`name` 'resnet20' is a built-in model and cannot be replaced; built-ins: \['small_cnn', "),
        ("test_bad", "tiny_mlp", r"`builder` must be a callable returning an nn.Module, got 'tiny_mlp'"),
        ("test_bad", lambda num_classes: nn.Linear(2, num_classes),
         r"`builder` .*<lambda> must take the keyword arguments \['num_classes', 'in_channels'\] .* lacks \['in_channels'\]"),
    ],
)
def test_bad_registrations(name, builder, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        register_model(name, builder)
    with pytest.raises(SpiralConfigError, match=r"`name` must be one of"):
        build_model("test_bad", num_classes=2, input_shape=(1, 8, 8))  # nothing was registered


def test_a_record_of_the_first_format_reads_with_defaults() -> None:
    old = {"name": "small_cnn", "kwargs": {"num_classes": 10}, "input_shape": [1, 8, 8], "pruning_history": [["a", 1, [2]]]}
    spec = ModelSpec.from_dict(old)
    assert (spec.input_dtype, spec.network_class, spec.pruning_history) == ("float32", None, [["a", True, [2]]])
    assert ModelSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"name": None, "kwargs": None, "input_shape": None}, r"Model spec is missing the keys \['pruning_history'\]"),
        ({"name": "x", "kwargs": None, "input_shape": [4], "pruning_history": []}, r"`name` and `kwargs` both or neither, got 'x' and None"),
        ({"name": None, "kwargs": None, "input_shape": None, "pruning_history": [["a", True, [0]]]},
         r"with a pruning history needs the `input_shape`"),
        ({"name": None, "kwargs": None, "input_shape": [4], "pruning_history": [], "input_dtype": "os.system"},
         r"`input_dtype` must name a torch dtype such as 'float32' or 'int64', got 'os.system'"),
        ({"name": None, "kwargs": None, "input_shape": [4], "pruning_history": [["a", True]]}, r"Model spec has a malformed value"),
        ({"name": None, "kwargs": None, "input_shape": ["x"], "pruning_history": []}, r"Model spec has a malformed value \(ValueError"),
    ],
)
def test_malformed_records_are_refused(data: dict, match: str) -> None:
    with pytest.raises(ModelFormatError, match=match):
        ModelSpec.from_dict(data)
