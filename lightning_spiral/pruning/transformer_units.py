"""Transformer pruning units: whole attention heads (or grouped-query groups) and MLP neurons.

A *unit* is a set of weight slices that live or die together. An attention unit's groups are its
heads — rows of the query, key and value projections and the matching input columns of the output
projection — or, with grouped-query attention, one key/value head with the query heads that share
it, so the groups survive pruning. An MLP unit's groups are the intermediate neurons: rows of the
up (and gate) projection and columns of the down projection. The head size and the hidden
(residual) width never change, so every block still adds into the same residual stream.

Units are found by the shape of the modules, not by class names, so related architectures work
alike:

==========================================  ==========================================================
family                                      attention unit / MLP unit
==========================================  ==========================================================
Hugging Face BERT, RoBERTa, …               ``query``/``key``/``value`` + parent's ``output.dense`` /
                                            ``intermediate.dense`` + ``output.dense``
Hugging Face ViT, LLaMA, Mistral, … (GQA)   ``q_proj``/``k_proj``/``v_proj``/``o_proj`` /
                                            ``fc1``/``fc2`` or ``gate_proj``/``up_proj``/``down_proj``
Hugging Face GPT-2                          fused ``c_attn`` + ``c_proj`` (``Conv1D``) / ``c_fc`` + ``c_proj``
torchvision ``VisionTransformer``           ``nn.MultiheadAttention`` / ``MLPBlock`` (``mlp.0``, ``mlp.3``)
==========================================  ==========================================================

Example:
    >>> from torchvision.models import VisionTransformer
    >>> vit = VisionTransformer(32, 8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64)
    >>> [(unit.path, unit.kind, unit.groups) for unit in find_units(vit)][:2]
    [('encoder.layers.encoder_layer_0.self_attention', 'heads', 4), ('encoder.layers.encoder_layer_0.mlp', 'mlp', 64)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.nn as nn

from lightning_spiral.pruning.head_pruned_attention import HeadPrunedAttention

UnitKind = Literal["heads", "mlp"]
Axis = Literal["out", "in"]


@dataclasses.dataclass
class Part:
    """One weight that a unit slices: along its outputs (``"out"``) or inputs (``"in"``).

    ``rows(group)`` gives the indices along that axis that belong to ``group``.
    """

    module: nn.Module
    axis: Axis
    rows: Callable[[int], list[int]]


@dataclasses.dataclass
class Unit:
    """A prunable set of groups: attention heads (``kind="heads"``) or MLP neurons (``kind="mlp"``).

    ``module`` is the attention or MLP module whose attributes follow its tensors; ``group_size``
    is the number of query heads per group (1 without grouped-query attention).
    """

    path: str
    kind: UnitKind
    module: nn.Module
    groups: int
    parts: list[Part]
    head_dim: int = 0
    group_size: int = 1
    members: tuple[nn.Module, ...] = ()

    def slices(self, group: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """``(weight slice, gradient slice or None)`` of every part for ``group``, as ``[rows, …]`` views."""
        for part in self.parts:
            index = torch.tensor(part.rows(group))
            for tensor, transpose in arranged(part.module, part.axis):
                grad = tensor.grad
                if transpose:
                    tensor, grad = tensor.t(), None if grad is None else grad.t()
                yield tensor.index_select(0, index), None if grad is None else grad.index_select(0, index)


def _head_rows(head_dim: int, offset: int = 0, heads_per_group: int = 1) -> Callable[[int], list[int]]:
    width = head_dim * heads_per_group
    return lambda group: list(range(offset + group * width, offset + (group + 1) * width))


def _neuron(index: int) -> list[int]:
    return [index]


def find_units(model: nn.Module) -> list[Unit]:
    """Every attention and MLP unit of ``model``, in module order (empty for a network without attention)."""
    units = []
    named = dict(model.named_modules())
    for path, module in named.items():
        unit = _attention_unit(path, module, named) or _mlp_unit(path, module)
        if unit is not None:
            units.append(unit)
    return units if any(unit.kind == "heads" for unit in units) else []


def _attention_unit(path: str, module: nn.Module, named: dict[str, nn.Module]) -> Unit | None:
    children = dict(module.named_children())
    if {"query", "key", "value"} <= set(children) and hasattr(module, "attention_head_size"):
        output = named.get(path.rsplit(".", 1)[0] + ".output.dense") if "." in path else None
        if isinstance(output, nn.Linear):
            return _separate(path, module, children["query"], children["key"], children["value"], output,
                             int(module.attention_head_size))
    if {"q_proj", "k_proj", "v_proj", "o_proj"} <= set(children) and hasattr(module, "head_dim"):
        return _separate(path, module, children["q_proj"], children["k_proj"], children["v_proj"], children["o_proj"],
                         int(module.head_dim))
    if {"c_attn", "c_proj"} <= set(children) and hasattr(module, "split_size") and not getattr(module, "is_cross_attention", False):
        return _fused(path, module, children["c_attn"], children["c_proj"], int(module.head_dim), int(module.split_size))
    if isinstance(module, (nn.MultiheadAttention, HeadPrunedAttention)) and _self_attention_layout(module):
        return _fused(path, module, module, module.out_proj, int(module.head_dim), int(module.in_proj_weight.shape[0] // 3))
    return None


def _self_attention_layout(module: nn.Module) -> bool:
    """A batch-first self-attention with one packed input projection (what torchvision's ViT builds)."""
    return bool(module.batch_first) and getattr(module, "in_proj_weight", None) is not None


def _separate(path: str, module: nn.Module, q: nn.Module, k: nn.Module, v: nn.Module, o: nn.Module,
              head_dim: int) -> Unit:
    heads, kv_heads = out_features(q) // head_dim, out_features(k) // head_dim
    per_group = heads // kv_heads
    parts = [Part(q, "out", _head_rows(head_dim, 0, per_group)), Part(k, "out", _head_rows(head_dim)),
             Part(v, "out", _head_rows(head_dim)), Part(o, "in", _head_rows(head_dim, 0, per_group))]
    return Unit(path, "heads", module, kv_heads, parts, head_dim, per_group, (q, k, v, o))


def _fused(path: str, module: nn.Module, qkv: nn.Module, o: nn.Module, head_dim: int, width: int) -> Unit:
    """Packed ``[q | k | v]`` output rows (GPT-2's ``c_attn``, ``nn.MultiheadAttention.in_proj_weight``)."""
    q_rows, k_rows, v_rows = (_head_rows(head_dim, offset) for offset in (0, width, 2 * width))
    parts = [Part(qkv, "out", lambda g: q_rows(g) + k_rows(g) + v_rows(g)), Part(o, "in", _head_rows(head_dim))]
    return Unit(path, "heads", module, width // head_dim, parts, head_dim, 1, (qkv, o))


def _mlp_unit(path: str, module: nn.Module) -> Unit | None:
    children = dict(module.named_children())
    for ups, down in ((("intermediate.dense",), "output.dense"), (("fc1",), "fc2"), (("c_fc",), "c_proj"),
                      (("gate_proj", "up_proj"), "down_proj"), (("0",), "3")):
        up_modules = [_child(module, name) for name in ups]
        down_module = _child(module, down)
        if all(_is_projection(m) for m in (*up_modules, down_module)) and not ({"c_attn", "query", "q_proj"} & set(children)):
            if ups == ("0",) and type(module).__name__ != "MLPBlock":
                continue  # an ``nn.Sequential`` counts only as torchvision's MLPBlock
            parts = [Part(m, "out", _neuron) for m in up_modules] + [Part(down_module, "in", _neuron)]
            return Unit(path, "mlp", module, out_features(up_modules[0]), parts, members=(*up_modules, down_module))
    return None


def _child(module: nn.Module, dotted: str) -> nn.Module | None:
    for name in dotted.split("."):
        module = dict(module.named_children()).get(name)
        if module is None:
            return None
    return module


def _is_projection(module: nn.Module | None) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _is_conv1d(module: nn.Module | None) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): a linear layer whose weight is stored ``[in, out]``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "nx")


def out_features(module: nn.Module) -> int:
    """Output width of a projection (``Linear``, ``Conv1D``)."""
    return int(module.nf) if _is_conv1d(module) else int(module.out_features)


def arranged(module: nn.Module, axis: Axis) -> list[tuple[nn.Parameter, bool]]:
    """The parameters sliced along ``axis``, each with whether it must be transposed to read ``[axis, …]``."""
    if isinstance(module, (nn.MultiheadAttention, HeadPrunedAttention)):
        return [(module.in_proj_weight, False)] + ([(module.in_proj_bias, False)] if module.in_proj_bias is not None else [])
    stored_out_first = not _is_conv1d(module)  # Linear stores [out, in], Conv1D [in, out]
    if axis == "in":
        return [(module.weight, stored_out_first)]
    return [(module.weight, not stored_out_first)] + ([(module.bias, False)] if module.bias is not None else [])


def keep(module: nn.Module, axis: Axis, index: torch.Tensor) -> None:
    """Keep only ``index`` along ``axis`` of ``module``'s weight (and bias), in place."""
    if isinstance(module, (nn.MultiheadAttention, HeadPrunedAttention)):
        module.in_proj_weight = _sliced(module.in_proj_weight, 0, index)
        if module.in_proj_bias is not None:
            module.in_proj_bias = _sliced(module.in_proj_bias, 0, index)
        return
    conv1d = _is_conv1d(module)
    weight_dim = (1 if axis == "out" else 0) if conv1d else (0 if axis == "out" else 1)
    module.weight = _sliced(module.weight, weight_dim, index)
    if axis == "out" and module.bias is not None:
        module.bias = _sliced(module.bias, 0, index)
    size = len(index)
    if conv1d:
        setattr(module, "nf" if axis == "out" else "nx", size)
    else:
        setattr(module, "out_features" if axis == "out" else "in_features", size)


def _sliced(parameter: nn.Parameter, dim: int, index: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(parameter.data.index_select(dim, index.to(parameter.device)).clone(),
                        requires_grad=parameter.requires_grad)
