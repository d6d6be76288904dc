"""Structured pruning core: tensors physically shrink, residuals stay consistent, the model still trains."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lightning_spiral.errors import PruningError, SpiralConfigError
from lightning_spiral.measure import count_macs, count_params
from lightning_spiral.models import build_model
from lightning_spiral.models.spec import spec_of
from lightning_spiral.pruning import prune

CIFAR = (3, 32, 32)


def _train_one_step(model: torch.nn.Module, input_shape: tuple[int, ...]) -> float:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(4, *input_shape), torch.randint(0, 10, (4,))
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2"])
def test_prune_shrinks_params_and_macs_and_still_trains(name: str) -> None:
    model = build_model(name, num_classes=10, input_shape=CIFAR)
    example = torch.randn(1, *CIFAR)
    params, macs = count_params(model), count_macs(model, example)
    prune(model, example, amount=0.5)
    assert count_params(model) < 0.5 * params
    assert count_macs(model, example) < 0.5 * macs
    assert model(torch.randn(2, *CIFAR)).shape == (2, 10)
    assert torch.isfinite(torch.tensor(_train_one_step(model, CIFAR)))


def test_residual_blocks_stay_consistent_on_resnet20() -> None:
    model = build_model("resnet20", num_classes=10, input_shape=CIFAR)
    prune(model, torch.randn(1, *CIFAR), amount=0.5)
    convs = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    # every conv of a stage reads what the residual stream carries: widths chain exactly
    for name, conv in convs.items():
        assert conv.weight.shape[0] == conv.out_channels
    assert model(torch.randn(3, *CIFAR)).shape == (3, 10)


def test_final_classifier_keeps_its_classes_and_history_is_recorded() -> None:
    model = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    prune(model, torch.randn(1, 1, 8, 8), amount=0.25)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears[-1].out_features == 10
    history = spec_of(model).pruning_history
    assert history and all(isinstance(step[0], str) and isinstance(step[2], list) for step in history)


def test_round_to_gives_multiples() -> None:
    model = build_model("resnet20", num_classes=10, input_shape=CIFAR)
    prune(model, torch.randn(1, *CIFAR), amount=0.3, round_to=4)
    widths = {m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    assert all(w % 4 == 0 for w in widths), widths


def test_round_to_keeps_a_multiple_when_a_layer_would_fall_below_it() -> None:
    # torch-pruning alone rounds such layers to zero channels and then leaves them unpruned
    model = build_model("vgg_bn", num_classes=10, input_shape=CIFAR)
    macs = count_macs(model, torch.randn(1, *CIFAR))
    prune(model, torch.randn(1, *CIFAR), amount=0.9, round_to=8)
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [8, 8, 8, 8, 8, 8, 24], widths  # 32 * 0.1 = 3.2 -> 8; 256 * 0.1 = 25.6 -> 24
    assert count_macs(model, torch.randn(1, *CIFAR)) < 0.05 * macs


def test_a_macs_target_is_reached_with_round_to() -> None:
    model = build_model("vgg_bn", num_classes=10, input_shape=CIFAR)
    macs = count_macs(model, torch.randn(1, *CIFAR))
    prune(model, torch.randn(1, *CIFAR), target_macs_ratio=0.2, round_to=8)
    assert 0.1 < count_macs(model, torch.randn(1, *CIFAR)) / macs <= 0.2  # widths move in steps of 8: not exactly 0.2
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_l1_keeps_the_largest_filters() -> None:
    model = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        first.weight.mul_(0.01)
        first.weight[:4].mul_(1000.0)  # the first four filters are by far the largest
        strong = first.weight[:4].clone()
    prune(model, torch.randn(1, 1, 8, 8), amount=0.5)
    kept = first.weight
    assert all(any(torch.equal(kept[i], s) for i in range(kept.shape[0])) for s in strong)


def test_ignored_layer_by_name_is_not_pruned() -> None:
    model = build_model("resnet20", num_classes=10, input_shape=CIFAR)
    prune(model, torch.randn(1, *CIFAR), amount=0.5, ignored_layers=["stem.0", "head"])
    assert model.stem[0].out_channels == 16


def test_pruning_does_not_touch_batchnorm_statistics() -> None:
    model = build_model("resnet20", num_classes=10, input_shape=CIFAR).train()
    running_mean = model.stem[1].running_mean.clone()
    prune(model, torch.randn(1, *CIFAR) * 100, amount=0.25, ignored_layers=["stem.0", "head"])
    assert torch.equal(model.stem[1].running_mean, running_mean)
    assert model.training


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amount": 0.0}, r"`amount` must be a number in \(0, 1\), got 0.0. 0.3 removes 30%"),
        ({"amount": 1.0}, r"`amount` must be .* got 1.0"),
        ({"amount": 0.3, "importance": "l3"}, r"`importance` must be one of \['l1', 'l2', 'bn_scale', 'taylor', 'fpgm', 'random'\], got 'l3'"),
        ({"amount": 0.3, "round_to": 0}, r"`round_to` must be an integer >= 1, got 0. Use None for exact channel counts"),
        ({"amount": 0.3, "ignored_layers": ["nope"]}, r"`ignored_layers` names 'nope', which is not a module"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    model = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    with pytest.raises(SpiralConfigError, match=match):
        prune(model, torch.randn(1, 1, 8, 8), **kwargs)


def test_target_macs_ratio_is_met_from_below_within_two_points() -> None:
    model = build_model("vgg_bn", num_classes=10, input_shape=CIFAR)
    example = torch.randn(1, *CIFAR)
    macs = count_macs(model, example)
    prune(model, example, target_macs_ratio=0.25)
    assert 0.23 <= count_macs(model, example) / macs <= 0.25
    assert spec_of(model).pruning_history  # only the final pruning is recorded, not the search trials


def test_unreachable_target_is_a_clear_error() -> None:
    model = build_model("resnet20", num_classes=10, input_shape=CIFAR)
    with pytest.raises(PruningError, match=r"`target_macs_ratio`=0.001 cannot be reached in one step"):
        prune(model, torch.randn(1, *CIFAR), target_macs_ratio=0.001)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, r"Pass exactly one of `amount`, `target_macs_ratio`, `target_params_ratio` and `target_latency_ms`, got amount=None, target_macs_ratio=None, target_params_ratio=None, target_latency_ms=None"),
        ({"amount": 0.2, "target_macs_ratio": 0.5}, r"Pass exactly one of `amount`, `target_macs_ratio`, `target_params_ratio` and `target_latency_ms`"),
        ({"target_macs_ratio": 1.0}, r"`target_macs_ratio` must be a number in \(0, 1\), got 1.0"),
    ],
)
def test_amount_or_target(kwargs: dict, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        prune(build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)), torch.randn(1, 1, 8, 8), **kwargs)


@pytest.mark.parametrize("importance", ["l2", "bn_scale", "fpgm", "random"])
def test_every_gradient_free_criterion_shrinks_and_trains(importance: str) -> None:
    model = build_model("resnet20", num_classes=10, input_shape=CIFAR)
    params = count_params(model)
    prune(model, torch.randn(1, *CIFAR), amount=0.5, importance=importance)
    assert count_params(model) < 0.5 * params
    assert torch.isfinite(torch.tensor(_train_one_step(model, CIFAR)))


def test_taylor_uses_gradients_and_needs_them() -> None:
    model = build_model("resnet20", num_classes=10, input_shape=CIFAR)
    with pytest.raises(SpiralConfigError, match=r"`importance`='taylor' ranks channels by weight x gradient"):
        prune(model, torch.randn(1, *CIFAR), amount=0.5, importance="taylor")
    F.cross_entropy(model(torch.randn(8, *CIFAR)), torch.randint(0, 10, (8,))).backward()
    params = count_params(model)
    prune(model, torch.randn(1, *CIFAR), amount=0.5, importance="taylor")
    assert count_params(model) < 0.5 * params
    assert torch.isfinite(torch.tensor(_train_one_step(model, CIFAR)))


def test_bn_scale_removes_the_channels_with_the_smallest_gamma() -> None:
    model = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8), widths=[8, 8])
    bn = model.features[0][1]
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([5.0, 0.01, 4.0, 0.02, 3.0, 0.03, 2.0, 0.04]))
    prune(model, torch.randn(1, 1, 8, 8), amount=0.5, importance="bn_scale", ignored_layers=["features.1.0", "head"])
    assert sorted(bn.weight.tolist()) == pytest.approx([2.0, 3.0, 4.0, 5.0])


def test_layer_amounts_override_the_amount_by_module_path() -> None:
    model = build_model("vgg_bn", num_classes=10, input_shape=CIFAR)
    prune(model, torch.randn(1, *CIFAR), amount=0.5, layer_amounts={"features.0.0": 0.25})
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths[:2] == [24, 16]  # 32 channels: 25% removed from the overridden layer, 50% elsewhere
    with pytest.raises(SpiralConfigError, match=r"`layer_amounts` names 'nope', which is not a module"):
        prune(model, torch.randn(1, *CIFAR), amount=0.5, layer_amounts={"nope": 0.1})


def test_latency_budget_search_takes_the_first_step_within_budget() -> None:
    from lightning_spiral.pruning.target import amount_for_latency

    model = build_model("vgg_bn", num_classes=10, input_shape=CIFAR)
    example = torch.randn(1, *CIFAR)
    macs = count_macs(model, example)
    # a deterministic latency model (ms proportional to MACs) in place of the noisy clock
    as_ms = lambda network: 10.0 * count_macs(network, example) / macs  # noqa: E731
    amount = amount_for_latency(model, example, 5.0, batch_size=64, prune_kwargs={}, prune_fn=prune, latency_fn=as_ms)
    assert as_ms(prune(copy.deepcopy(model), example, amount=amount)) <= 5.0
    assert as_ms(prune(copy.deepcopy(model), example, amount=amount - 0.05)) > 5.0


def test_latency_budget_with_the_real_clock() -> None:
    model = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    prune(model, torch.randn(1, 1, 8, 8), target_latency_ms=1e6, latency_batch_size=4)  # any step fits: 5%
    assert model.features[0][0].out_channels < 32
    with pytest.raises(SpiralConfigError, match=r"`target_latency_ms` must be a finite number > 0, got -1"):
        prune(model, torch.randn(1, 1, 8, 8), target_latency_ms=-1)


class HardCodedWidth(torch.nn.Module):
    """A model whose forward hard-codes a channel count: structural pruning must refuse it clearly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.reshape_head = torch.nn.Linear(16 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reshape_head(self.conv(x).reshape(-1, 16 * 8 * 8))


def test_an_unprunable_layer_is_named_in_a_clear_error() -> None:
    model = HardCodedWidth()
    with pytest.raises(PruningError, match=r"HardCodedWidth cannot be pruned structurally: layer '.*' failed with"):
        prune(model, torch.randn(1, 3, 8, 8), amount=0.5)


def test_target_params_ratio_is_met_from_below() -> None:
    model = build_model("vgg_bn", num_classes=10, input_shape=CIFAR)
    params = count_params(model)
    prune(model, torch.randn(1, *CIFAR), target_params_ratio=0.3)
    assert 0.28 <= count_params(model) / params <= 0.3


def test_a_failed_prune_leaves_the_model_exactly_as_it_was() -> None:
    model = HardCodedWidth().eval()  # torch-pruning cuts conv and reshape_head; the hard-coded reshape then fails
    example = torch.randn(2, 3, 8, 8)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    conv, weight, output = model.conv, model.conv.weight, model(example)
    with pytest.raises(PruningError, match=r"HardCodedWidth cannot be pruned structurally: .*The model is left as it was"):
        prune(model, example[:1], amount=0.5)
    assert model.conv is conv and model.conv.weight is weight  # the user's references stay valid
    assert (model.conv.out_channels, model.reshape_head.in_features) == (16, 16 * 8 * 8)
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[key], value) for key, value in state.items())
    assert torch.equal(model(example), output)
    assert spec_of(model) is None  # nothing recorded


def test_pruning_history_is_recorded_on_a_network_of_any_class() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    prune(model, torch.randn(1, 16), amount=0.5)
    record = spec_of(model)
    assert (record.name, record.input_shape, record.input_dtype) == (None, (16,), "float32")
    assert record.pruning_history == [["0", True, record.pruning_history[0][2]]] and len(record.pruning_history[0][2]) == 16
