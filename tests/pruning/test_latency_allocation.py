"""Per-layer latency allocation: the greedy spends the budget where latency is, the check loop meets it, bad input is refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from conftest import two_process_results

from lightning_spiral import PruningCallback
from lightning_spiral.errors import PruningError, SpiralConfigError
from lightning_spiral.measure import count_macs
from lightning_spiral.models import build_model
from lightning_spiral.pruning import prune
from lightning_spiral.pruning.importance import make_importance
from lightning_spiral.pruning.latency_allocation import ChannelGroup, allocate, channel_groups, layer_amounts_for_latency
from lightning_spiral.pruning import structured
from lightning_spiral.pruning.structured import _prune_by_amount, ignored_modules

OPTIONS = dict(importance="l1", global_pruning=False, ignored_layers=None, layer_amounts=None, round_to=None)


class CostlyStem(nn.Module):
    """A wide convolution at full resolution (most of the MACs), then a thin one after pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Conv2d(3, 64, 3, padding=1)
        self.wide_out = nn.Conv2d(64, 16, 3, padding=1)
        self.thin = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.wide_out(torch.relu(self.wide(x))))
        x = torch.relu(self.thin(nn.functional.max_pool2d(x, 4)))
        return self.head(x.mean((2, 3)))


def macs_latency(example: torch.Tensor):
    """A deterministic stand-in for a measurement: milliseconds proportional to MACs."""
    return lambda network: count_macs(network, example) / 1e6


def test_allocate_takes_the_cheapest_importance_per_millisecond_first() -> None:
    groups = [ChannelGroup("a", torch.tensor([1.0, 1.0, 5.0, 5.0])), ChannelGroup("b", torch.tensor([0.1, 0.1, 9.0, 9.0]))]
    table = {"a": [8.0, 6.0], "b": [9.0, 8.0]}  # cut by 0.25 / 0.5
    assert allocate(groups, table, base_ms=10.0, target_ms=9.5, fractions=(0.25, 0.5)) == {"b": 0.25}  # 1 ms per 0.1 lost
    assert allocate(groups, table, base_ms=10.0, target_ms=6.5, fractions=(0.25, 0.5)) == {"a": 0.25, "b": 0.5}
    assert allocate(groups, table, base_ms=10.0, target_ms=1.0, fractions=(0.25, 0.5)) is None  # out of the table's reach


def test_the_groups_are_the_pruners_and_scored_per_channel() -> None:
    net, x = CostlyStem(), torch.randn(1, 3, 16, 16)
    groups = {g.path: g for g in channel_groups(net, x, importance=make_importance("l1"), ignored=ignored_modules(net, None),
                                                 round_to=None)}
    assert set(groups) == {"wide", "wide_out", "thin"}  # the head is the kept classifier
    assert groups["wide"].scores.shape == (64,) and groups["thin"].scores.shape == (16,)
    assert groups["wide"].lost(0.5) < groups["wide"].lost(1.0) / 2 + 1e-6  # the lowest scores go first


def test_the_allocation_meets_the_budget_and_cuts_the_costly_layer_most() -> None:
    torch.manual_seed(0)
    net, x = CostlyStem(), torch.randn(1, 3, 16, 16)
    latency = macs_latency(x)
    budget = 0.6 * latency(net)
    groups = channel_groups(net, x, importance=make_importance("l1"), ignored=ignored_modules(net, None), round_to=None)
    amounts = layer_amounts_for_latency(net, x, budget, groups, latency, prune_fn=_prune_by_amount, prune_kwargs=OPTIONS)
    assert net.wide.out_channels == 64  # the trials ran on copies
    full_resolution = max(amounts.get("wide", 0.0), amounts.get("wide_out", 0.0))
    assert full_resolution > amounts.get("thin", 0.0)  # the cut goes where the MACs are
    pruned = _prune_by_amount(net, x, 0.0, **OPTIONS | {"layer_amounts": amounts})
    assert latency(pruned) <= budget
    assert pruned(x).shape == (1, 4)


def test_an_unreachable_budget_is_refused_and_the_model_kept() -> None:
    net, x = CostlyStem(), torch.randn(1, 3, 16, 16)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    groups = channel_groups(net, x, importance=make_importance("l1"), ignored=ignored_modules(net, None), round_to=None)
    with pytest.raises(PruningError, match="cannot be met in one step with `latency_allocation`='per_layer'"):
        layer_amounts_for_latency(net, x, 1e-6, groups, macs_latency(x), prune_fn=_prune_by_amount, prune_kwargs=OPTIONS)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(amount=0.3), "`target_latency_ms` is not set"),
    (dict(target_latency_ms=5.0, global_pruning=True), "`global_pruning`=True"),
    (dict(target_latency_ms=5.0, layer_amounts={"wide": 0.5}), "`layer_amounts`="),
    (dict(target_latency_ms=5.0, latency_allocation="greedy"), "`latency_allocation` must be one of"),
])
def test_conflicting_options_are_refused_in_one_line(kwargs: dict, message: str) -> None:
    net = CostlyStem()
    with pytest.raises(SpiralConfigError, match=message) as refused:
        prune(net, torch.randn(1, 3, 16, 16), **{"latency_allocation": "per_layer", **kwargs})
    assert "\n" not in str(refused.value)
    assert net.wide.out_channels == 64


def test_prune_per_layer_measures_a_real_network() -> None:
    net, x = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)), torch.randn(1, 1, 8, 8)
    macs = count_macs(net, x)
    pruned = prune(net, x, target_latency_ms=1e3, latency_allocation="per_layer", latency_batch_size=4)  # met unpruned
    assert pruned is net and count_macs(net, x) == macs  # a budget already met cuts nothing
    assert net(x).shape == (1, 10)


def test_the_callback_spends_a_latency_budget_per_layer_and_reports_the_fraction_of_channels_removed(monkeypatch) -> None:
    torch.manual_seed(0)
    net, x = CostlyStem(), torch.randn(1, 3, 16, 16)
    monkeypatch.setattr(structured, "latency_measurement", lambda example, batch_size: macs_latency(x))
    budget = 0.6 * macs_latency(x)(net)
    callback = PruningCallback(target_latency_ms=budget, latency_allocation="per_layer", verbose=0)
    widths = {name: getattr(net, name).out_channels for name in ("wide", "wide_out", "thin")}
    callback.prune_network(net, x)
    assert macs_latency(x)(net) <= budget and net(x).shape == (1, 4)
    removed = sum(widths[name] - getattr(net, name).out_channels for name in widths)
    assert callback.applied_amount == pytest.approx(removed / sum(widths.values()))
    kept = {name: getattr(net, name).out_channels / widths[name] for name in widths}
    assert min(kept["wide"], kept["wide_out"]) < kept["thin"]  # the cut goes where the MACs are


def test_per_layer_without_a_latency_budget_is_refused_when_the_callback_is_built() -> None:
    with pytest.raises(SpiralConfigError, match="`target_latency_ms` is not set") as refused:
        PruningCallback(amount=0.3, latency_allocation="per_layer")
    assert "\n" not in str(refused.value)


class TwoRanks:
    """A strategy stand-in: ``world_size`` 2, this process is ``global_rank``; broadcast hands out rank 0's object."""

    def __init__(self, global_rank: int, rank_zero_sends: object = None) -> None:
        self.world_size, self.global_rank, self.rank_zero_sends = 2, global_rank, rank_zero_sends

    def broadcast(self, obj: object, src: int = 0) -> object:
        return obj if self.global_rank == src else self.rank_zero_sends


def test_a_measured_decision_is_taken_on_rank_zero_and_every_rank_prunes_by_it() -> None:
    callback = PruningCallback(target_latency_ms=5.0, verbose=0)
    callback._strategy = TwoRanks(global_rank=1, rank_zero_sends=(0.35, None))
    assert callback.decided_once(lambda: pytest.fail("rank 1 measured")) == 0.35
    callback._strategy = TwoRanks(global_rank=1, rank_zero_sends=(None, ("PruningError", "out of reach")))
    with pytest.raises(PruningError, match="out of reach"):  # rank 0's refusal reaches rank 1: nobody waits forever
        callback.decided_once(lambda: pytest.fail("rank 1 measured"))
    callback._strategy = TwoRanks(global_rank=0)

    def unreachable() -> float:
        raise PruningError("budget out of reach")

    with pytest.raises(PruningError, match="budget out of reach"):
        callback.decided_once(unreachable)
    assert callback.decided_once(lambda: 0.2) == 0.2


DDP_SCRIPT = """
import json, os, sys
import torch
from conftest import quiet_trainer
from docs_style import LitClassifier
from lightning_spiral import PruningCallback
from lightning_spiral.data import DigitsDataModule
from lightning_spiral.measure import count_macs
from lightning_spiral.pruning import structured

rank = int(os.environ.get("LOCAL_RANK", 0))
example = torch.randn(1, 1, 8, 8)
def macs_ms(example, batch_size):  # deterministic milliseconds, so the budget is met the same way every run
    return lambda network: count_macs(network, example) / 1e6
def never(example, batch_size):
    raise AssertionError("rank 1 measured latency: only rank 0 may decide")
structured.latency_measurement = macs_ms if rank == 0 else never
torch.manual_seed(0)
model = LitClassifier()
budget = 0.5 * count_macs(model.net, example) / 1e6
callback = PruningCallback(target_latency_ms=budget, latency_allocation="per_layer", verbose=0)
trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, strategy="ddp", devices=2, callbacks=[callback])
trainer.fit(model, datamodule=DigitsDataModule(batch_size=32))
widths = [m.out_channels for m in model.net if isinstance(m, torch.nn.Conv2d)]
with open(f"{sys.argv[1]}.{trainer.global_rank}", "w") as f:
    json.dump({"widths": widths, "ms": count_macs(model.net, example) / 1e6, "budget": budget}, f)
torch.distributed.destroy_process_group()  # left to interpreter exit, gloo's threads can abort the process
"""


@pytest.mark.slow
def test_two_process_ddp_ranks_prune_by_rank_zeros_latency_plan(tmp_path) -> None:
    zero, one = two_process_results(tmp_path, DDP_SCRIPT)
    assert zero["widths"] == one["widths"] and zero["widths"] != [32, 64]  # one plan, rank 0's, on both ranks
    assert zero["ms"] <= zero["budget"]
