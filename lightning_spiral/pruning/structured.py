"""Structured channel pruning through torch-pruning's dependency graph — no Lightning needed.

Channels are physically removed: every layer coupled to a pruned channel (the next convolution's
input, BatchNorm, residual additions, concatenations) is cut consistently, so the result is a
smaller dense network that is faster without sparse kernels. This is the pruning *core*: the
:class:`~lightning_spiral.pruning.PruningCallback` only decides *when* to call it.

The steps applied are appended to the pruning history of the model's
:class:`~lightning_spiral.models.spec.ModelSpec` — attached now to a network of the user's own
class, with the traced input's shape and dtype — so :func:`lightning_spiral.restore` (any class)
and :func:`lightning_spiral.load_model` (registry models) rebuild the pruned shapes safely. A step
that fails leaves the model exactly as it was (:class:`ModuleSnapshot`).

Example:
    >>> import torch
    >>> from lightning_spiral.models import build_model
    >>> net = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    >>> _ = prune(net, torch.randn(1, 3, 32, 32), amount=0.5)
    >>> net.stem[0].out_channels
    8
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn

from lightning_spiral.checks import check_bool, check_choice, check_int, check_interval, refuse
from lightning_spiral.errors import PruningError, SpiralConfigError
from lightning_spiral.models.pruning_fixups import channel_multiple
from lightning_spiral.models.spec import PruningStep, record_pruning
from lightning_spiral.pruning.coupling import output_widths, warn_over_pruned
from lightning_spiral.pruning.importance import ImportanceName, check_importance_name, make_importance, needs_gradients
from lightning_spiral.pruning.latency_allocation import (
    LatencyAllocation,
    channel_groups,
    check_latency_allocation,
    layer_amounts_for_latency,
    removed_fraction,
)
from lightning_spiral.pruning.rollback import LastModuleEntered, ModuleSnapshot
from lightning_spiral.pruning.tp_step import torch_pruning_step
from lightning_spiral.pruning.transformer import (
    check_drop_blocks,
    check_hidden_prunable,
    check_unit_importance,
    has_units,
    hidden_ignored,
    prune_units,
    sync_configs,
)
from lightning_spiral.pruning.target import (
    amount_for_latency,
    amount_for_ratio,
    check_latency_batch_size,
    check_latency_budget,
    check_ratio,
    latency_measurement,
)


AMOUNT_HINT = "0.3 removes 30% of the channels of every prunable layer (about 50% of the MACs)."
UnitMode = Literal["heads_mlp", "mlp", "channels"]
UNIT_MODES: tuple[str, ...] = ("heads_mlp", "mlp", "channels")


def check_amount(amount: float | None, name: str = "amount", *, none_ok: bool = False) -> float | None:
    """Validate a per-stage channel fraction in (0, 1) (``None`` passes with ``none_ok``)."""
    return check_interval(name, amount, "(0, 1)", none_ok=none_ok, hint=AMOUNT_HINT)


def check_round_to(round_to: int | None) -> int | None:
    """Validate the channel-count multiple (``None`` keeps exact counts)."""
    hint = "Use None for exact channel counts, or e.g. 8 for tensor cores."
    return check_int("round_to", round_to, 1, none_ok=True, hint=hint)


def check_layer_amounts(layer_amounts: Mapping[str, float] | None) -> dict[str, float] | None:
    """Validate per-layer overrides of ``amount``: module path -> channel fraction in (0, 1)."""
    if layer_amounts is None:
        return None
    if not isinstance(layer_amounts, Mapping):
        raise refuse("layer_amounts", layer_amounts, "None or a mapping of module paths to amounts",
                     "For example {'features.0.0': 0.1}.")
    return {path: check_amount(value, f"layer_amounts[{path!r}]") for path, value in layer_amounts.items()}


def check_layer_paths(layers: Sequence[str | nn.Module] | None) -> list[str | nn.Module] | None:
    """Validate ``ignored_layers``: ``None`` or a list of module paths (a lone string is refused)."""
    if layers is None:
        return None
    if isinstance(layers, str) or not isinstance(layers, Iterable):
        raise refuse("ignored_layers", layers, "None or a list of module paths",
                     "Pass a list, also for one layer: ['head'].")
    return list(layers)


def check_transformer_options(model: nn.Module, units: UnitMode, drop_blocks: int, importance: str,
                              global_pruning: bool) -> bool:
    """Validate ``units`` and ``drop_blocks`` against ``model``; whether it is pruned by transformer units."""
    check_choice("units", units, UNIT_MODES, hint="'heads_mlp' removes attention heads and MLP neurons, 'mlp' MLP "
                 "neurons only (a Hugging Face round trip of BERT/GPT-2), 'channels' prunes channels everywhere.")
    check_int("drop_blocks", drop_blocks, 0, hint="It is the number of whole transformer blocks to remove.")
    by_units = units != "channels" and has_units(model)
    if drop_blocks and not by_units:
        raise SpiralConfigError(
            f"`drop_blocks`={drop_blocks} removes transformer blocks, but {type(model).__name__} is pruned by channels "
            f"(units={units!r}{'' if units == 'channels' else ', no attention heads found'}). Use `drop_blocks=0`."
        )
    if by_units:
        check_unit_importance(importance)
        if drop_blocks:
            check_drop_blocks(model, drop_blocks)
        if global_pruning:
            raise SpiralConfigError("`global_pruning`=True ranks channels across layers; attention heads and MLP "
                                    "neurons are pruned per layer. Use `global_pruning=False` or `layer_amounts`.")
    return by_units


def check_targets(
    amount: float | None, target_macs_ratio: float | None, target_params_ratio: float | None, target_latency_ms: float | None
) -> tuple[float | None, float | None, float | None, float | None]:
    """Exactly one way of saying how much to prune, each value checked; returned in the same order."""
    given = {"amount": amount, "target_macs_ratio": target_macs_ratio, "target_params_ratio": target_params_ratio,
             "target_latency_ms": target_latency_ms}
    if sum(value is not None for value in given.values()) != 1:
        shown = ", ".join(f"{name}={value!r}" for name, value in given.items())
        raise SpiralConfigError(
            f"Pass exactly one of `amount`, `target_macs_ratio`, `target_params_ratio` and `target_latency_ms`, got {shown}."
        )
    return (
        check_amount(amount, none_ok=True),
        check_ratio(target_macs_ratio, "macs", none_ok=True),
        check_ratio(target_params_ratio, "params", none_ok=True),
        check_latency_budget(target_latency_ms, none_ok=True),
    )


def default_ignored_layers(model: nn.Module) -> list[nn.Module]:
    """The final classifier: the last ``nn.Linear`` registered in the model, else the last conv."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if linears:
        return [linears[-1]]
    convs = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    return [convs[-1]] if convs else []


def ignored_modules(model: nn.Module, ignored_layers: Sequence[str | nn.Module] | None) -> list[nn.Module]:
    """The layers whose output channels are kept: ``ignored_layers`` resolved, or the final classifier."""
    return default_ignored_layers(model) if ignored_layers is None else resolve_layers(model, ignored_layers)


def resolve_layers(model: nn.Module, layers: Sequence[str | nn.Module], argument: str = "ignored_layers") -> list[nn.Module]:
    """Turn module paths (``"fc"``, ``"features.10"``) or modules into modules of ``model``."""
    named = dict(model.named_modules())
    resolved = []
    for layer in layers:
        if isinstance(layer, nn.Module):
            resolved.append(layer)
        elif layer in named:
            resolved.append(named[layer])
        else:
            leaf_names = [name for name, m in named.items() if name and not list(m.children())]
            raise SpiralConfigError(
                f"`{argument}` names {layer!r}, which is not a module of {type(model).__name__}. "
                f"Allowed: module paths such as {leaf_names[:5]} (and {max(len(leaf_names) - 5, 0)} more)."
            )
    return resolved


def prune(
    model: nn.Module,
    example_inputs: torch.Tensor,
    *,
    amount: float | None = None,
    target_macs_ratio: float | None = None,
    target_params_ratio: float | None = None,
    target_latency_ms: float | None = None,
    latency_batch_size: int = 64,
    latency_allocation: LatencyAllocation = "uniform",
    importance: ImportanceName = "l1",
    global_pruning: bool = False,
    ignored_layers: Sequence[str | nn.Module] | None = None,
    layer_amounts: Mapping[str, float] | None = None,
    round_to: int | None = None,
    units: UnitMode = "heads_mlp",
    drop_blocks: int = 0,
    hidden: bool = False,
) -> nn.Module:
    """Remove ``amount`` of the channels of ``model`` in place (or enough to reach a MACs ratio); return it.

    Args:
        model: the network to prune (any module torch-pruning can trace).
        example_inputs: a batch on the model's device used to trace the graph, e.g. shape ``(1, C, H, W)``.
        amount: channel fraction to remove from each prunable layer (or overall when ``global_pruning``).
        target_macs_ratio: instead of ``amount``: keep at most this fraction of the model's current
            MACs; the amount is found by bisection (:func:`amount_for_ratio`).
        target_params_ratio: the same for the number of parameters.
        target_latency_ms: instead of ``amount``: prune in steps of 5% of the channels until the
            measured CPU latency at ``latency_batch_size`` is within this budget (:func:`amount_for_latency`).
        latency_batch_size: batch size of the latency measurement for ``target_latency_ms``.
        latency_allocation: how ``target_latency_ms`` is spent: ``"uniform"`` cuts every layer by the
            same fraction; ``"per_layer"`` cuts each dependency group by its measured latency saved
            per importance lost (a latency table built once, NetAdapt/HALP-style; :mod:`~lightning_spiral.pruning.latency_allocation`).
        importance: criterion ranking the channels (see :mod:`~lightning_spiral.pruning.importance`);
            ``"taylor"`` needs ``.grad`` on the weights.
        global_pruning: rank channels across layers instead of removing ``amount`` from every layer.
        ignored_layers: modules or module paths whose *output* channels are kept; ``None`` keeps the
            final classifier (the last ``nn.Linear``) so the number of classes is unchanged.
        layer_amounts: per-layer overrides of ``amount`` by module path, e.g. ``{"features.0.0": 0.1}``
            (the layer's dependency group is pruned by that fraction instead).
        round_to: keep channel counts multiples of this number (e.g. 8 for tensor cores); models
            with attention heads also keep multiples of their head count.
        units: ``"heads_mlp"``: a transformer (Hugging Face BERT/GPT-2/ViT/LLaMA-style attention,
            torchvision's ViT) loses ``amount`` of every attention layer's heads and of every MLP's
            neurons, head size and hidden width kept (:mod:`~lightning_spiral.pruning.transformer`);
            ``"mlp"``: MLP neurons only, heads kept; ``"channels"``: channel pruning for every model,
            e.g. the hidden width of torchvision's ViT. Networks without attention are always pruned by channels.
        drop_blocks: for a transformer: first remove this many whole blocks,
            those whose output differs least from their input (:mod:`~lightning_spiral.pruning.depth`).
        hidden: for a transformer with ``nn.Linear`` projections (BERT, ViT, LLaMA-style): also remove
            ``amount`` of the hidden (residual) width, through torch-pruning's graph — embeddings,
            norms and every projection's input follow; off by default.

    Returns:
        The same ``model`` object, with smaller layers and the steps appended to its pruning history.

    Raises:
        SpiralConfigError: an argument is invalid; raised before anything is traced or pruned.
        PruningError: torch-pruning or the check forward after it failed; every submodule's
            parameters, buffers and attributes are back as they were.

    Warns:
        CoupledPruningWarning: (a ``UserWarning``) a layer lost far more than ``amount`` of its
            output channels through coupled channels, e.g. a ``torch.chunk`` gate; the message names
            the layers and suggests ``ignored_layers`` or ``layer_amounts``. The rule is in
            :mod:`~lightning_spiral.pruning.coupling`; the trials of a target search never warn.
    """
    amount, target_macs_ratio, target_params_ratio, target_latency_ms = check_targets(
        amount, target_macs_ratio, target_params_ratio, target_latency_ms)
    options: dict[str, Any] = dict(
        importance=check_importance_name(importance),
        global_pruning=check_bool("global_pruning", global_pruning),
        ignored_layers=check_layer_paths(ignored_layers),
        layer_amounts=check_layer_amounts(layer_amounts),
        round_to=check_round_to(round_to),
    )
    by_units = check_transformer_options(model, units, drop_blocks, importance, options["global_pruning"])
    options.update(units=units, drop_blocks=drop_blocks, hidden=check_bool("hidden", hidden))
    if hidden and by_units:
        check_hidden_prunable(model)
    latency_batch_size = check_latency_batch_size(latency_batch_size)
    check_latency_allocation(latency_allocation, target_latency_ms=target_latency_ms, by_units=by_units,
                             global_pruning=options["global_pruning"], layer_amounts=layer_amounts)
    check_gradients(model, importance)
    if target_macs_ratio is not None or target_params_ratio is not None:
        metric, target = ("macs", target_macs_ratio) if target_macs_ratio is not None else ("params", target_params_ratio)
        amount = amount_for_ratio(model, example_inputs, target, metric=metric, prune_kwargs=options, prune_fn=prune)
    elif latency_allocation == "per_layer":
        amounts, _ = per_layer_latency_plan(model, example_inputs, target_latency_ms, latency_batch_size, options)
        return prune_layer_amounts(model, example_inputs, amounts, options)
    elif target_latency_ms is not None:
        amount = amount_for_latency(model, example_inputs, target_latency_ms, batch_size=latency_batch_size,
                                    prune_kwargs=options, prune_fn=prune)
    if by_units:
        return _prune_units_by_amount(model, example_inputs, amount, **options)
    return _prune_by_amount(model, example_inputs, amount, **options)


def per_layer_latency_plan(model: nn.Module, example_inputs: torch.Tensor, budget_ms: float, batch_size: int,
                           options: dict[str, Any]) -> tuple[dict[str, float], float]:
    """The cuts of ``latency_allocation="per_layer"``: per-group fractions measured within ``budget_ms``, and the overall one.

    ``options`` are :func:`prune`'s checked pruning options; ``model`` is left as it is (every trial
    prunes a copy). Returns the group paths' fractions (for :func:`prune_layer_amounts`) and the
    fraction of all those groups' channels they remove. Measured, so under DDP one rank decides
    (:class:`~lightning_spiral.PruningCallback` sends its plan to the others).
    """
    by_units = check_transformer_options(model, options["units"], options["drop_blocks"], options["importance"],
                                         options["global_pruning"])
    check_latency_allocation("per_layer", target_latency_ms=budget_ms, by_units=by_units,
                             global_pruning=options["global_pruning"], layer_amounts=options["layer_amounts"])
    groups = channel_groups(model, example_inputs, importance=make_importance(options["importance"]),
                            ignored=ignored_modules(model, options["ignored_layers"]), round_to=options["round_to"])
    amounts = layer_amounts_for_latency(model, example_inputs, budget_ms, groups, latency_measurement(example_inputs, batch_size),
                                        prune_fn=_prune_by_amount, prune_kwargs=options)
    return amounts, removed_fraction(groups, amounts)


def prune_layer_amounts(model: nn.Module, example_inputs: torch.Tensor, layer_amounts: dict[str, float],
                        options: dict[str, Any]) -> nn.Module:
    """Prune exactly ``layer_amounts`` (group path -> fraction, e.g. from :func:`per_layer_latency_plan`); other groups stay whole."""
    return _prune_by_amount(model, example_inputs, 0.0, **options | {"layer_amounts": layer_amounts})


def check_gradients(model: nn.Module, importance: ImportanceName) -> None:
    """A gradient-based criterion (``"taylor"``) needs ``.grad`` on the weights before pruning."""
    if needs_gradients(importance) and not any(p.grad is not None for p in model.parameters()):
        raise SpiralConfigError(
            f"`importance`={importance!r} ranks channels by weight x gradient, but no parameter of "
            f"{type(model).__name__} has a gradient. Call `loss.backward()` on a few batches first "
            "(PruningCallback does this for you)."
        )


def _prune_by_amount(
    model: nn.Module,
    example_inputs: torch.Tensor,
    amount: float,
    *,
    importance: ImportanceName,
    global_pruning: bool,
    ignored_layers: Sequence[str | nn.Module] | None,
    layer_amounts: Mapping[str, float] | None,
    round_to: int | None,
    **_transformer_options: Any,
) -> nn.Module:
    """:func:`prune` once the amount is known and every argument is checked; warns about coupled layers."""
    multiple = channel_multiple(model)
    if multiple is not None:
        round_to = math.lcm(round_to or 1, multiple)
    ignored = ignored_modules(model, ignored_layers)
    overrides = {resolve_layers(model, [name], argument="layer_amounts")[0]: value for name, value in (layer_amounts or {}).items()}
    pruner_options = dict(importance=make_importance(importance), pruning_ratio=amount, pruning_ratio_dict=overrides or None,
                          global_pruning=global_pruning, ignored_layers=ignored, round_to=round_to)
    before = output_widths(model)
    steps = _prune_or_roll_back(model, example_inputs, lambda: torch_pruning_step(model, example_inputs, pruner_options))
    record_pruning(model, steps, example_inputs)
    if not global_pruning:  # global ranking removes different fractions per layer by design
        warn_over_pruned(model, before, amount, overrides, ignored, round_to, stacklevel=4)  # blames prune's caller
    return model


def _prune_units_by_amount(
    model: nn.Module,
    example_inputs: torch.Tensor,
    amount: float,
    *,
    importance: ImportanceName,
    ignored_layers: Sequence[str | nn.Module] | None,
    layer_amounts: Mapping[str, float] | None,
    round_to: int | None,
    units: UnitMode,
    drop_blocks: int,
    hidden: bool,
    **_channel_options: Any,
) -> nn.Module:
    """:func:`prune` of a transformer: blocks, then heads and MLP neurons (:func:`prune_units`), then the hidden width."""
    ignored = [] if ignored_layers is None else resolve_layers(model, ignored_layers)
    overrides = {resolve_layers(model, [name], argument="layer_amounts")[0]: value for name, value in (layer_amounts or {}).items()}

    def apply() -> list[PruningStep]:
        steps = prune_units(model, example_inputs, amount, importance=importance, ignored=ignored, overrides=overrides,
                            round_to=round_to, blocks_to_drop=drop_blocks, heads=units == "heads_mlp")
        if hidden:
            kept = hidden_ignored(model) + default_ignored_layers(model) + ignored
            steps += torch_pruning_step(model, example_inputs, dict(
                importance=make_importance(importance), pruning_ratio=amount, ignored_layers=kept, round_to=round_to))
            sync_configs(model)
        return steps

    steps = _prune_or_roll_back(model, example_inputs, apply)
    record_pruning(model, steps, example_inputs)
    return model


def _prune_or_roll_back(model: nn.Module, example_inputs: torch.Tensor,
                        apply: Callable[[], list[PruningStep]]) -> list[PruningStep]:
    """``apply()`` and a check forward; on any failure every submodule (and config) is put back as it was.

    Returns:
        The steps ``apply`` took.
    """
    was_training = model.training
    model.eval()  # tracing runs a forward pass: in train mode it would corrupt BatchNorm statistics
    snapshot = ModuleSnapshot(model)
    tracker = LastModuleEntered(model)
    try:
        with torch.enable_grad(), tracker:  # the graph is traced through autograd
            steps = apply()
            tracker.reset()
            with torch.no_grad():
                model(example_inputs)  # a layer that pruning cannot handle shows up here, not mid-training
    except BaseException as err:  # also Ctrl-C: never leave a half-pruned model behind
        snapshot.restore()
        if not isinstance(err, Exception):
            raise
        raise PruningError(
            f"{type(model).__name__} cannot be pruned structurally: layer {tracker.last!r} failed with "
            f"{type(err).__name__}: {err}. The model is left as it was. Hint: add {tracker.last!r} (or the layer "
            "feeding it) to `ignored_layers`."
        ) from err
    finally:
        model.train(was_training)
    return steps
