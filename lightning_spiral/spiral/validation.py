"""Argument checks shared by the spiral driver: each raises before any work, naming the value."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as L
import torch
import torch.nn as nn

from lightning_spiral.errors import SpiralConfigError


def check_fraction(name: str, value: float, open_low: bool = False) -> float:
    """``value`` in [0, 1] (or (0, 1] with ``open_low``)."""
    low_ok = value > 0 if open_low else value >= 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low_ok and value <= 1):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise SpiralConfigError(f"`{name}` must be a fraction in {interval}, got {value!r}.")
    return float(value)


def check_positive_int(name: str, value: int) -> int:
    """``value`` an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpiralConfigError(f"`{name}` must be an integer >= 1, got {value!r}.")
    return value


def check_stage_epochs(stage_epochs: int | Sequence[int], max_stages: int) -> list[int]:
    """One epoch count per stage: an int is repeated, a list must have ``max_stages`` entries."""
    if isinstance(stage_epochs, int) and not isinstance(stage_epochs, bool):
        return [check_positive_int("stage_epochs", stage_epochs)] * max_stages
    epochs = list(stage_epochs)
    if len(epochs) != max_stages:
        raise SpiralConfigError(
            f"`stage_epochs` must be one integer or a list of `max_stages`={max_stages} integers, got {epochs!r} "
            f"(e.g. {[1] * (max_stages - 1) + [9]}: short stages, then a long last one)."
        )
    return [check_positive_int("stage_epochs", e) for e in epochs]


def check_strategy_keeps_the_model(trainer: Callable[..., L.Trainer]) -> None:
    """Spawned or forked worker processes train copies: the pruned student never returns to the driver."""
    strategy = (trainer.keywords if isinstance(trainer, functools.partial) else {}).get("strategy")
    name = strategy if isinstance(strategy, str) else None
    start_method = getattr(strategy, "_start_method", None)
    if (name and name.startswith(("ddp_spawn", "ddp_fork", "ddp_notebook"))) or start_method in ("spawn", "fork", "forkserver"):
        raise SpiralConfigError(
            f"`strategy`={name or type(strategy).__name__} runs training in spawned or forked processes, which cannot "
            "hand the pruned student back to the spiral (and crashed 1 run in 10 here). Use strategy='ddp' "
            "(`trainer=ddp_cpu` on CPU), which runs the whole spiral in every process."
        )


def check_network_fits_data(network: nn.Module, datamodule: L.LightningDataModule) -> None:
    """One forward pass on a zero sample: the network must take the data's shape and give its classes."""
    was_training = network.training
    try:
        with torch.no_grad():
            output = network.eval()(torch.zeros(2, *datamodule.input_shape))
    except RuntimeError as err:
        raise SpiralConfigError(
            f"The network cannot take the data's input shape {tuple(datamodule.input_shape)}: {err}"
        ) from err
    finally:
        network.train(was_training)
    if output.dim() != 2 or output.shape[1] != datamodule.num_classes:
        raise SpiralConfigError(
            f"The network outputs shape {tuple(output.shape)} but the data has {datamodule.num_classes} classes; "
            f"teacher and student must output (N, {datamodule.num_classes}) logits. Build the model with "
            f"`num_classes={datamodule.num_classes}`."
        )


PRUNING_AMOUNT_ARGUMENTS = ("amount", "target_macs_ratio", "target_params_ratio", "target_latency_ms")


def scheduled_probe(pruning: Callable[..., Any], schedule: str) -> Any:
    """The pruning callback a MACs ``schedule`` will build, checked now: the schedule sets each stage's target.

    A ``pruning`` partial that binds its own ``amount`` or target would be silently replaced, so it
    is refused, naming the argument.
    """
    bound = pruning.keywords if isinstance(pruning, functools.partial) else {}
    clashing = {name: bound[name] for name in PRUNING_AMOUNT_ARGUMENTS if bound.get(name) is not None}
    if clashing:
        pruning()  # a bad value gets its own error first
        given = ", ".join(f"{name}={value!r}" for name, value in clashing.items())
        raise SpiralConfigError(
            f"The pruning callback sets {given}, but `schedule`={schedule!r} gives every stage its own MACs target "
            "(landing on `target_macs_ratio` after `max_stages` stages) and would ignore it. Set it to None "
            "(config: `pruning.amount=null`) or use `schedule='constant'`, which prunes that much per stage."
        )
    return pruning(amount=None, target_macs_ratio=0.5)
