"""Per-layer cuts for a latency budget: where a channel saves the most time for the least importance.

Cutting every layer by the same fraction until a latency budget fits (:func:`~lightning_spiral.pruning.target.amount_for_latency`)
spends importance where it buys no speed: on CPUs a thin depthwise layer costs little per channel,
a wide 1x1 convolution at high resolution a lot. Here, in the spirit of NetAdapt (Yang et al. 2018)
and HALP (Shen et al. 2022), the decision is taken per dependency group of torch-pruning:

1. **A latency table, built once**: the network's measured latency with only group ``g`` cut by
   each fraction of :data:`FRACTIONS` (every other group whole).
2. **A greedy allocation**: starting from the whole network, take the step — one group, from its
   current fraction to a larger one — with the most predicted latency saved per unit of importance
   lost (the sum of the removed channels' scores under the pruner's own criterion), until the
   predicted latency (the base minus every group's saving) fits.
3. **A check**: the allocation is pruned on a copy and measured; savings of neighbouring groups are
   not additive (a convolution's cost follows its input *and* output width), so while the measured
   latency is over budget the predicted target is lowered by measured/budget and the allocation redone.

Example:
    >>> import torch
    >>> groups = [ChannelGroup("wide", torch.ones(8)), ChannelGroup("thin", torch.ones(8))]
    >>> table = {"wide": [6.0, 4.0, 2.0], "thin": [9.5, 9.0, 8.5]}  # ms with the group cut by 0.25, 0.5, 0.75
    >>> allocate(groups, table, base_ms=10.0, target_ms=5.0, fractions=(0.25, 0.5, 0.75))
    {'wide': 0.5}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn

from lightning_spiral.checks import check_choice
from lightning_spiral.errors import PruningError, SpiralConfigError
from lightning_spiral.pruning.target import trial_prune
from lightning_spiral.pruning.tp_step import RoundingMetaPruner

#: Fractions of a group's channels the latency table is measured at (and the allocation chooses from).
FRACTIONS = (0.25, 0.5, 0.75)

#: Allocations tried, each aimed lower than the last, before the budget is declared out of reach.
TRIES = 4

LatencyAllocation = Literal["uniform", "per_layer"]
LATENCY_ALLOCATIONS: tuple[str, ...] = ("uniform", "per_layer")

LatencyOf = Callable[[nn.Module], float]
Table = dict[str, list[float]]


@dataclasses.dataclass(frozen=True)
class ChannelGroup:
    """One dependency group of torch-pruning: its root module's path and every channel's importance."""

    path: str
    scores: torch.Tensor  # (channels,), the pruner's criterion (l1, taylor, ...)

    def lost(self, fraction: float) -> float:
        """Importance removed with ``fraction`` of the channels: the sum of the lowest scores."""
        count = int(fraction * self.scores.numel())
        return float(self.scores.sort().values[:count].sum())


def removed_fraction(groups: Sequence[ChannelGroup], amounts: dict[str, float]) -> float:
    """The fraction of all the groups' channels that ``amounts`` (group path -> fraction) removes.

    Example:
        >>> removed_fraction([ChannelGroup("a", torch.ones(8)), ChannelGroup("b", torch.ones(24))], {"a": 0.5})
        0.125
    """
    total = sum(group.scores.numel() for group in groups)
    return sum(amounts.get(group.path, 0.0) * group.scores.numel() for group in groups) / total if total else 0.0


def check_latency_allocation(allocation: str, *, target_latency_ms: float | None, by_units: bool, global_pruning: bool,
                             layer_amounts: Any) -> str:
    """``"uniform"`` (the same fraction everywhere) or ``"per_layer"``, which needs a latency budget and channel pruning."""
    check_choice("latency_allocation", allocation, LATENCY_ALLOCATIONS,
                 hint="'per_layer' cuts each layer by the latency it saves per importance lost; 'uniform' cuts every layer alike.")
    conflict = ("`target_latency_ms` is not set" if target_latency_ms is None
                else "the model is pruned by attention heads and MLP neurons (`units`='channels' prunes channels)" if by_units
                else "`global_pruning`=True ranks channels across layers whatever they cost" if global_pruning
                else f"`layer_amounts`={layer_amounts!r} fixes the cuts it would choose" if layer_amounts is not None else None)
    if allocation == "per_layer" and conflict:
        raise SpiralConfigError(f"`latency_allocation`='per_layer' decides per layer how a latency budget is spent, "
                                f"but {conflict}. Use `latency_allocation`='uniform'.")
    return allocation


def channel_groups(model: nn.Module, example_inputs: torch.Tensor, *, importance: Any, ignored: list[nn.Module],
                   round_to: int | None) -> list[ChannelGroup]:
    """The dependency groups the pruner would cut (root module path) and their channel scores under ``importance``."""
    names = {module: name for name, module in model.named_modules()}
    was_training = model.training
    model.eval()  # tracing runs a forward pass: in train mode it would move BatchNorm statistics
    try:
        with torch.enable_grad():
            pruner = RoundingMetaPruner(model, example_inputs, importance=importance, pruning_ratio=0.0,
                                        ignored_layers=ignored, round_to=round_to)
            scored = [(group[0].dep.target.module, pruner.estimate_importance(group))
                      for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                                            root_module_types=pruner.root_module_types)]
    finally:
        model.train(was_training)
    return [ChannelGroup(names[module], scores.detach().cpu()) for module, scores in scored if scores is not None]


def latency_table(model: nn.Module, example_inputs: torch.Tensor, groups: Sequence[ChannelGroup], latency: LatencyOf, *,
                  prune_fn: Callable[..., nn.Module], prune_kwargs: dict[str, Any],
                  fractions: Sequence[float] = FRACTIONS) -> Table:
    """``{path: [ms with only that group cut by each fraction]}``, every trial on a copy of ``model``."""
    return {group.path: [latency(trial_prune(prune_fn, model, example_inputs, 0.0, prune_kwargs | {"layer_amounts": {group.path: f}}))
                         for f in fractions]
            for group in groups}


def allocate(groups: Sequence[ChannelGroup], table: Table, *, base_ms: float, target_ms: float,
             fractions: Sequence[float] = FRACTIONS) -> dict[str, float] | None:
    """The greedy allocation: ``{path: fraction}`` of the cut groups, or ``None`` when the table cannot reach ``target_ms``."""
    level = {group.path: -1 for group in groups}  # index into fractions; -1: the group is whole

    def latency_at(path: str, index: int) -> float:
        return base_ms if index < 0 else table[path][index]

    def fraction_at(index: int) -> float:
        return 0.0 if index < 0 else fractions[index]

    predicted = base_ms
    while predicted > target_ms:
        best: tuple[float, str, int] | None = None
        for group in groups:
            now = level[group.path]
            for index in range(now + 1, len(fractions)):
                saved = latency_at(group.path, now) - latency_at(group.path, index)
                if saved <= 0:
                    continue
                lost = group.lost(fraction_at(index)) - group.lost(fraction_at(now))
                value = saved / max(lost, 1e-12)
                if best is None or value > best[0]:
                    best = (value, group.path, index)
        if best is None:
            return None
        _, path, index = best
        predicted -= latency_at(path, level[path]) - latency_at(path, index)
        level[path] = index
    return {path: fractions[index] for path, index in level.items() if index >= 0}


def layer_amounts_for_latency(
    model: nn.Module,
    example_inputs: torch.Tensor,
    budget_ms: float,
    groups: Sequence[ChannelGroup],
    latency: LatencyOf,
    *,
    prune_fn: Callable[..., nn.Module],
    prune_kwargs: dict[str, Any],
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, float]:
    """Per-group fractions whose pruned copy of ``model`` measures within ``budget_ms`` (see the module docstring).

    Args:
        model: the network (left untouched: every trial prunes a deep copy).
        example_inputs: a batch of 1 used to trace.
        budget_ms: the latency budget, in the units of ``latency``.
        groups: the prunable dependency groups and their channel scores.
        latency: ``latency(network) -> ms``, a measurement or a latency model.
        prune_fn: called as ``prune_fn(copy, example_inputs, amount=0.0, layer_amounts=..., **prune_kwargs)``.
        prune_kwargs: the pruning options besides ``layer_amounts``.
        fractions: the cuts a group may take.

    Raises:
        PruningError: no allocation measured within the budget in :data:`TRIES` tries.
    """
    first_ms = latency(model)
    table = latency_table(model, example_inputs, groups, latency, prune_fn=prune_fn, prune_kwargs=prune_kwargs,
                          fractions=fractions)
    base_ms = min(first_ms, latency(model))  # before and after the table: one slow moment does not skew every saving
    target_ms, measured = budget_ms, base_ms
    for _ in range(TRIES):
        amounts = allocate(groups, table, base_ms=base_ms, target_ms=target_ms, fractions=fractions)
        if amounts is None:
            break
        measured = latency(trial_prune(prune_fn, model, example_inputs, 0.0, prune_kwargs | {"layer_amounts": amounts}))
        if measured <= budget_ms:
            return amounts
        target_ms *= budget_ms / measured
    raise PruningError(
        f"`target_latency_ms`={budget_ms} cannot be met in one step with `latency_allocation`='per_layer': the best "
        f"allocation of cuts up to {max(fractions):.0%} per layer measured {measured:.2f} ms (unpruned {base_ms:.2f} ms). "
        "Use more stages or a larger budget."
    )
