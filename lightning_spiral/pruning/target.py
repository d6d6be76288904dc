"""Find the channel fraction that brings a network's MACs (or measured latency) to a target.

Removing a fraction ``p`` of channels from every layer cuts MACs by roughly ``1 - (1 - p)^2``, but
unpruned layers (the stem's input, the classifier's output), ``round_to`` and global ranking make
the exact value model-specific. So the amount is found by bisection: each trial prunes a deep copy
and counts its MACs; the smallest amount whose MACs ratio is at or below the target wins.

Example:
    >>> import torch
    >>> from lightning_spiral.models import build_model
    >>> net = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    >>> from lightning_spiral.pruning import prune
    >>> amount = amount_for_ratio(net, torch.randn(1, 1, 8, 8), 0.25, metric="macs", prune_kwargs={}, prune_fn=prune)
    >>> 0.4 < amount < 0.6
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn as nn

from lightning_spiral.checks import check_int, check_interval, check_positive
from lightning_spiral.errors import PruningError
from lightning_spiral.measure import count_macs, count_params, measure_latency
from lightning_spiral.pruning.coupling import quiet_coupling_warnings

#: Largest channel fraction the search will try: beyond it layers are left with almost nothing.
MAX_SEARCH_AMOUNT = 0.9


Metric = Literal["macs", "params"]


def trial_copy(model: nn.Module) -> nn.Module:
    """A deep copy to prune on trial, with the accumulated gradients (``deepcopy`` drops ``.grad``,
    which gradient-based importance such as ``"taylor"`` ranks channels by)."""
    trial = copy.deepcopy(model)
    for original, copied in zip(model.parameters(), trial.parameters()):
        if original.grad is not None:
            copied.grad = original.grad.clone()
    return trial


def check_ratio(target: float | None, metric: Metric = "macs", *, none_ok: bool = False) -> float | None:
    """Validate a MACs or parameter ratio target in (0, 1) (``None`` passes with ``none_ok``)."""
    kept = "MACs" if metric == "macs" else "parameters"
    hint = f"0.25 keeps a quarter of the {kept}."
    return check_interval(f"target_{metric}_ratio", target, "(0, 1)", none_ok=none_ok, hint=hint)


def check_latency_budget(budget_ms: float | None, *, none_ok: bool = False) -> float | None:
    """Validate ``target_latency_ms``: a finite number of milliseconds > 0 (``None`` passes with ``none_ok``)."""
    hint = "It is a CPU latency budget in milliseconds, e.g. 5.0."
    return check_positive("target_latency_ms", budget_ms, none_ok=none_ok, hint=hint)


def check_latency_batch_size(batch_size: int) -> int:
    """Validate the batch size of the latency measurement behind ``target_latency_ms``."""
    return check_int("latency_batch_size", batch_size, 1, hint="It is the batch size the latency is measured at, e.g. 64.")


def trial_prune(prune_fn: Callable[..., nn.Module], model: nn.Module, example_inputs: torch.Tensor, amount: float,
                prune_kwargs: dict[str, Any]) -> nn.Module:
    """``prune_fn`` on a :func:`trial_copy` of ``model``; only the final pruning warns about coupled layers."""
    with quiet_coupling_warnings():
        return prune_fn(trial_copy(model), example_inputs, amount=amount, **prune_kwargs)


def amount_for_ratio(
    model: nn.Module,
    example_inputs: torch.Tensor,
    target: float,
    *,
    metric: Metric,
    prune_kwargs: dict[str, Any],
    prune_fn: Callable[..., nn.Module],
    iterations: int = 10,
) -> float:
    """Smallest channel fraction whose pruned copy of ``model`` keeps ``<= target`` of its MACs (or parameters).

    Args:
        model: the network (left untouched: every trial prunes a deep copy).
        example_inputs: a batch of 1 used to trace and count.
        target: MACs (or parameters) after / before, in (0, 1).
        metric: ``"macs"`` or ``"params"``.
        prune_kwargs: the other arguments of :func:`~lightning_spiral.pruning.prune` (importance, ...).
        prune_fn: the pruning function, called as ``prune_fn(copy, example_inputs, amount=..., **prune_kwargs)``.
        iterations: bisection steps (10 resolve the amount to ~1e-3).
    """
    target = check_ratio(target, metric)
    check_int("iterations", iterations, 1)

    def size(network: nn.Module) -> int:
        return count_macs(network, example_inputs) if metric == "macs" else count_params(network)

    base = size(model)

    def ratio(amount: float) -> float:
        return size(trial_prune(prune_fn, model, example_inputs, amount, prune_kwargs)) / base

    if ratio(MAX_SEARCH_AMOUNT) > target:
        raise PruningError(
            f"`target_{metric}_ratio`={target} cannot be reached in one step: removing {MAX_SEARCH_AMOUNT:.0%} of the "
            f"channels leaves {ratio(MAX_SEARCH_AMOUNT):.1%} of the {metric} (ignored layers keep theirs). "
            "Use more stages or fewer `ignored_layers`."
        )
    low, high = 0.0, MAX_SEARCH_AMOUNT  # ratio(low) > target >= ratio(high)
    for _ in range(iterations):
        middle = (low + high) / 2
        if ratio(middle) <= target:
            high = middle
        else:
            low = middle
    return high


def latency_measurement(example_inputs: torch.Tensor, batch_size: int, *, repeats: int = 10,
                        threads: int = 2) -> Callable[[nn.Module], float]:
    """``latency(network) -> ms``: the CPU latency of a network of ``example_inputs``' sample shape at ``batch_size``."""
    input_shape = tuple(example_inputs.shape[1:])
    return lambda network: measure_latency(network, input_shape, batch_size, repeats=repeats, threads=threads)


def amount_for_latency(
    model: nn.Module,
    example_inputs: torch.Tensor,
    budget_ms: float,
    *,
    batch_size: int,
    prune_kwargs: dict[str, Any],
    prune_fn: Callable[..., nn.Module],
    step: float = 0.05,
    repeats: int = 10,
    threads: int = 2,
    latency_fn: Callable[[nn.Module], float] | None = None,
) -> float:
    """Smallest channel fraction, in steps of ``step``, whose pruned copy runs within ``budget_ms``.

    Latency is measured, not modelled (median of ``repeats`` CPU runs at ``batch_size``), because
    MACs predict speed poorly for thin layers; measurements are noisy, so the budget is met for the
    median, not for every single call. ``latency_fn(model) -> ms`` replaces the measurement (e.g. a
    latency model of other hardware).
    """
    budget_ms = check_latency_budget(budget_ms)
    check_latency_batch_size(batch_size)
    check_interval("step", step, "(0, 1)")
    latency_of = latency_fn or latency_measurement(example_inputs, batch_size, repeats=repeats, threads=threads)
    amount = step
    while amount <= MAX_SEARCH_AMOUNT + 1e-9:
        latency = latency_of(trial_prune(prune_fn, model, example_inputs, amount, prune_kwargs))
        if latency <= budget_ms:
            return round(amount, 6)
        amount += step
    raise PruningError(
        f"`target_latency_ms`={budget_ms} cannot be met in one step: removing {MAX_SEARCH_AMOUNT:.0%} of the channels "
        f"still takes {latency:.2f} ms at batch {batch_size}. Use more stages or a larger budget."
    )
