"""Pruning transformers by heads, MLP width and depth, and replaying those steps on a fresh model.

:func:`~lightning_spiral.pruning.prune` sends a network with attention units
(:mod:`~lightning_spiral.pruning.transformer_units`) here instead of channel pruning: every
attention layer loses ``amount`` of its heads (whole heads, head size kept; grouped-query
attention loses whole groups), every MLP ``amount`` of its intermediate neurons (kept counts rounded
to ``round_to``), and ``drop_blocks`` whole blocks go first (:mod:`~lightning_spiral.pruning.depth`).
Heads and neurons are ranked by the criterion's score summed over their weights in every
projection they span: ``l1`` (Σ|w|), ``l2`` (√Σw²), ``taylor`` (Σ|w·∂L/∂w|, Molchanov et al. 2019)
or ``random``.

Each change is one history step ``[path, kind, removed]`` with ``kind`` ``"heads"``, ``"mlp"`` or
``"blocks"`` (positions of the removed groups at that time), so :func:`apply_step` replays it on a
freshly built model. Afterwards the modules' own attributes (``num_attention_heads``,
``all_head_size``, ``split_size``, …) and any Hugging Face config (``num_attention_heads``,
``num_key_value_heads``, ``head_dim``, ``intermediate_size``, ``num_hidden_layers``) describe the
tensors; where layers differ, the config keeps per-layer lists in ``spiral_layer_shapes``.

Example:
    >>> import torch
    >>> from torchvision.models import VisionTransformer
    >>> vit = VisionTransformer(32, 8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64).eval()
    >>> steps = prune_units(vit, torch.randn(2, 3, 32, 32), 0.5, importance="l1")
    >>> [(path.rsplit(".", 1)[-1], kind, len(removed)) for path, kind, removed in steps][:2]
    [('self_attention', 'heads', 2), ('mlp', 'mlp', 32)]
    >>> vit.encoder.layers[0].self_attention.num_heads, vit(torch.randn(1, 3, 32, 32)).shape
    (2, torch.Size([1, 1000]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from lightning_spiral.errors import PruningError, SpiralConfigError
from lightning_spiral.models.spec import PruningStep, spec_of
from lightning_spiral.pruning.depth import block_influence, block_stack, drop_blocks
from lightning_spiral.pruning.head_pruned_attention import HeadPrunedAttention
from lightning_spiral.pruning.transformer_units import Unit, find_units, keep, out_features

UNIT_KINDS = ("heads", "mlp", "blocks")
UNIT_IMPORTANCE = ("l1", "l2", "taylor", "random")


def has_units(model: nn.Module) -> bool:
    """Whether ``model`` holds attention units, so :func:`prune` removes heads rather than channels."""
    return bool(find_units(model))


def check_unit_importance(importance: str) -> None:
    """Transformer units are ranked by ``l1``, ``l2``, ``taylor`` or ``random``; others are refused."""
    if importance not in UNIT_IMPORTANCE:
        raise SpiralConfigError(
            f"`importance`={importance!r} has no meaning for attention heads and MLP neurons; allowed for "
            f"transformers: {list(UNIT_IMPORTANCE)}. (`bn_scale` and `fpgm` rank convolution channels.)"
        )


def prune_units(model: nn.Module, example_inputs: torch.Tensor, amount: float, *, importance: str,
                ignored: Sequence[nn.Module] = (), overrides: Mapping[nn.Module, float] | None = None,
                round_to: int | None = None, blocks_to_drop: int = 0, heads: bool = True) -> list[PruningStep]:
    """Drop ``blocks_to_drop`` blocks, then remove ``amount`` of every unit's groups (heads only if ``heads``); return the steps."""
    check_unit_importance(importance)
    steps: list[PruningStep] = []
    if blocks_to_drop:
        steps.append(_drop_least_influential(model, example_inputs, blocks_to_drop))
    skipped = {id(m) for m in ignored}
    for unit in find_units(model):
        if skipped & {id(unit.module), *map(id, unit.members)} or (unit.kind == "heads" and not heads):
            continue
        unit_amount = _override(unit, overrides or {}, amount)
        removed = _least_important(unit, _kept_count(unit, unit_amount, round_to), importance)
        if removed:
            apply_step(model, [unit.path, unit.kind, removed])
            steps.append([unit.path, unit.kind, removed])
    sync_configs(model)
    return steps


def check_drop_blocks(model: nn.Module, count: int) -> None:
    """``count`` blocks can be dropped: ``model`` has one stack of more than ``count`` blocks."""
    try:
        _, blocks = block_stack(model, find_units(model))
    except PruningError as err:
        raise SpiralConfigError(str(err)) from None
    if count >= len(blocks):
        raise SpiralConfigError(f"`drop_blocks` must be below the {len(blocks)} blocks of {type(model).__name__}, got {count}.")


def _drop_least_influential(model: nn.Module, example_inputs: torch.Tensor, count: int) -> PruningStep:
    path, blocks = block_stack(model, find_units(model))
    influence = block_influence(model, blocks, example_inputs)
    removed = sorted(int(i) for i in influence.argsort()[:count])
    drop_blocks(blocks, removed)
    return [path, "blocks", removed]


def _override(unit: Unit, overrides: Mapping[nn.Module, float], amount: float) -> float:
    for module in (unit.module, *unit.members):
        if module in overrides:
            return overrides[module]
    return amount


def _kept_count(unit: Unit, amount: float, round_to: int | None) -> int:
    """Groups kept at ``amount``: torch-pruning's rounding, MLP widths to multiples of ``round_to``, at least one."""
    kept = int(unit.groups * (1 - amount))
    if unit.kind == "mlp" and round_to:
        kept -= kept % round_to
        kept = max(kept, min(round_to, unit.groups))
    return max(kept, 1)


def _least_important(unit: Unit, kept: int, importance: str) -> list[int]:
    scores = group_scores(unit, importance)
    return sorted(int(i) for i in scores.argsort()[: unit.groups - kept])


def group_scores(unit: Unit, importance: str) -> torch.Tensor:
    """One score per group of ``unit`` (higher: more important)."""
    if importance == "random":
        return torch.rand(unit.groups)
    scores = []
    for group in range(unit.groups):
        total = torch.zeros((), dtype=torch.float64)
        for weight, grad in unit.slices(group):
            if importance == "taylor":
                if grad is None:
                    raise SpiralConfigError("`importance`='taylor' needs gradients on the attention and MLP weights.")
                total += (weight * grad).abs().sum().double()
            else:
                total += weight.double().abs().pow(1 if importance == "l1" else 2).sum()
        scores.append(total.sqrt() if importance == "l2" else total)
    return torch.stack(scores)


def apply_step(model: nn.Module, step: PruningStep) -> None:
    """Replay one ``[path, kind, removed]`` step on ``model`` (a step of :func:`prune_units`)."""
    path, kind, removed = step
    if kind == "blocks":
        drop_blocks(_module_at(model, path), removed)
        return
    unit = next((u for u in find_units(model) if u.path == path and u.kind == kind), None)
    if unit is None or max(removed, default=-1) >= unit.groups:
        raise PruningError(f"No {kind} unit with more than {max(removed, default=-1)} groups at {path!r}.")
    removed_groups = set(removed)
    kept_groups = [g for g in range(unit.groups) if g not in removed_groups]
    for part in unit.parts:
        keep(part.module, part.axis, torch.tensor([row for g in kept_groups for row in part.rows(g)]))
    _sync_unit(model, unit, len(kept_groups))


def _sync_unit(model: nn.Module, unit: Unit, kept_groups: int) -> None:
    """Make the unit's module attributes describe its new tensors."""
    if unit.kind == "mlp":
        _set_ints(unit.module, intermediate_size=out_features(unit.parts[0].module))
        return
    heads = kept_groups * unit.group_size
    width = heads * unit.head_dim
    module = unit.module
    if isinstance(module, nn.MultiheadAttention):  # its inner width is tied to embed_dim: take its place
        parent, _, name = unit.path.rpartition(".")
        module = HeadPrunedAttention(module)
        setattr(_module_at(model, parent), name, module)
    _set_ints(module, num_attention_heads=heads, num_heads=heads, all_head_size=width, split_size=width,
              num_key_value_heads=kept_groups)


def _set_ints(module: Any, **values: int) -> None:
    for name, value in values.items():
        if isinstance(getattr(module, name, None), int) and not isinstance(getattr(module, name), bool):
            setattr(module, name, int(value))


def _module_at(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path) if path else model


def kept_blocks(model: nn.Module, num_blocks: int) -> list[int]:
    """The original indices of the blocks ``model`` still has, from its pruning history; ``num_blocks`` at build.

    Student block ``i`` is teacher block ``kept[i]``: ``list(enumerate(kept_blocks(student, n)))`` is
    the layer map of :func:`~lightning_spiral.distill.layer_terms` after depth pruning.

    Example:
        >>> from torchvision.models import VisionTransformer
        >>> vit = VisionTransformer(32, 8, num_layers=3, num_heads=2, hidden_dim=16, mlp_dim=32).eval()
        >>> from lightning_spiral.pruning import prune
        >>> _ = prune(vit, torch.randn(2, 3, 32, 32), amount=0.5, drop_blocks=1)
        >>> len(kept_blocks(vit, 3))
        2
    """
    kept = list(range(num_blocks))
    history = [] if spec_of(model) is None else spec_of(model).pruning_history
    for _, kind, removed in history:
        if kind == "blocks":
            kept = [index for position, index in enumerate(kept) if position not in removed]
    return kept


def check_hidden_prunable(model: nn.Module) -> None:
    """The hidden width is pruned through torch-pruning's graph, which needs every projection to be an ``nn.Linear``."""
    others = sorted({type(part.module).__name__ for unit in find_units(model) for part in unit.parts
                     if type(part.module) is not nn.Linear})
    if others:
        raise SpiralConfigError(
            f"`hidden`=True prunes the residual width through nn.Linear projections, but {type(model).__name__} "
            f"projects with {others}. Use `hidden=False`, or `units='channels'` for torchvision's ViT."
        )


def hidden_ignored(model: nn.Module) -> list[nn.Module]:
    """Layers whose outputs the hidden-width step keeps: every head and MLP projection (their widths are the units')."""
    return [part.module for unit in find_units(model) for part in unit.parts if part.axis == "out"]


def _in_features(module: nn.Module) -> int:
    if isinstance(module, (nn.MultiheadAttention, HeadPrunedAttention)):
        return int(module.in_proj_weight.shape[1])
    return int(module.nx) if hasattr(module, "nx") else int(module.in_features)


def configs_of(model: nn.Module) -> list[Any]:
    """The distinct Hugging Face configs (objects with ``to_dict``) held by ``model``'s modules."""
    found = {id(c): c for m in model.modules() if hasattr(c := getattr(m, "config", None), "to_dict")}
    return list(found.values())


def sync_configs(model: nn.Module) -> None:
    """Write the pruned shapes into every Hugging Face config of ``model`` (scalars where all layers agree)."""
    configs = configs_of(model)
    if not configs:
        return
    units = find_units(model)
    hidden = next(part.module for unit in units if unit.kind == "heads" for part in unit.parts if part.axis == "out")
    for unit in units:
        _set_ints(unit.module, hidden_size=_in_features(hidden))
    shapes = {
        "hidden_size": [_in_features(hidden)],
        "num_attention_heads": [u.groups * u.group_size for u in units if u.kind == "heads"],
        "num_key_value_heads": [u.groups for u in units if u.kind == "heads"],
        "head_dim": [u.head_dim for u in units if u.kind == "heads"],
        "intermediate_size": [u.groups for u in units if u.kind == "mlp"],
    }
    uniform = {name: values[0] for name, values in shapes.items() if values and len(set(values)) == 1}
    per_layer = {name: values for name, values in shapes.items() if values and name not in uniform}
    for config in configs:
        for name, value in uniform.items():
            if name != "num_key_value_heads" or hasattr(config, name):  # only configs with grouped-query attention
                setattr(config, "n_inner" if name == "intermediate_size" and hasattr(config, "n_inner") else name, value)
        config.num_hidden_layers = len(shapes["head_dim"])
        if per_layer:
            config.spiral_layer_shapes = per_layer
        elif hasattr(config, "spiral_layer_shapes"):
            del config.spiral_layer_shapes
