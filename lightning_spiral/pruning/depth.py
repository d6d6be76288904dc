"""Depth pruning: drop whole transformer blocks, the least important first.

A block's importance is its *Block Influence* (Men et al. 2024, *ShortGPT*,
https://arxiv.org/abs/2403.03853; the depth criterion Minitron compares against,
https://arxiv.org/abs/2407.14679): one minus the cosine similarity between the hidden states
entering and leaving the block, averaged over tokens of a real batch. A block that barely changes
its input is the one the network misses least.

The blocks are the children of the one ``nn.ModuleList`` / ``nn.Sequential`` whose every child holds
an attention unit (Hugging Face ``encoder.layer`` / ``transformer.h``, torchvision ``encoder.layers``).
Numbered children are renumbered after a drop, so a Hugging Face model keeps contiguous layer
indices; a ``layer_idx`` attribute inside a block (the key/value cache index) follows its block.

Example:
    >>> import torch
    >>> from torchvision.models import VisionTransformer
    >>> from lightning_spiral.pruning.transformer_units import find_units
    >>> vit = VisionTransformer(32, 8, num_layers=3, num_heads=2, hidden_dim=16, mlp_dim=32).eval()
    >>> path, blocks = block_stack(vit, find_units(vit))
    >>> path, len(blocks), block_influence(vit, blocks, torch.randn(2, 3, 32, 32)).shape
    ('encoder.layers', 3, torch.Size([3]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_spiral.errors import PruningError
from lightning_spiral.pruning.transformer_units import Unit


def block_stack(model: nn.Module, units: Sequence[Unit]) -> tuple[str, nn.Module]:
    """``(path, container)`` of the stack of transformer blocks of ``model``.

    Raises:
        PruningError: ``model`` has no such stack, or several (an encoder-decoder).
    """
    attention = {id(unit.module) for unit in units if unit.kind == "heads"}
    stacks = [(path, module) for path, module in model.named_modules()
              if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(module) >= 1
              and all(any(id(m) in attention for m in child.modules()) for child in module)]
    if len(stacks) != 1:
        found = [path for path, _ in stacks] or "none"
        raise PruningError(f"Dropping blocks needs exactly one stack of transformer blocks in {type(model).__name__}, "
                           f"found {found}. Use `drop_blocks=0`.")
    return stacks[0]


def block_influence(model: nn.Module, blocks: nn.Module, example_inputs: torch.Tensor) -> torch.Tensor:
    """``1 - cos(hidden in, hidden out)`` of every block of ``blocks``, averaged over the tokens of ``example_inputs``."""
    seen: dict[int, list[torch.Tensor]] = {}

    def entering(index: int):
        def hook(_module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
            seen[index] = [args[0] if args else kwargs["hidden_states"]]
        return hook

    def leaving(index: int):
        def hook(_module: nn.Module, _args: tuple, output: Any) -> None:
            seen[index].append(output[0] if isinstance(output, (tuple, list)) else output)
        return hook

    handles = []
    for index, block in enumerate(blocks):
        handles += [block.register_forward_pre_hook(entering(index), with_kwargs=True),
                    block.register_forward_hook(leaving(index))]
    try:
        with torch.no_grad():
            model(example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([1 - F.cosine_similarity(x_in.float().flatten(0, -2), x_out.float().flatten(0, -2), dim=-1).mean()
                        for x_in, x_out in (seen[i] for i in range(len(blocks)))])


def drop_blocks(blocks: nn.Module, removed: Sequence[int]) -> None:
    """Remove the children at positions ``removed`` from ``blocks``, in place; renumber numbered children."""
    items = [(name, child) for index, (name, child) in enumerate(blocks._modules.items()) if index not in set(removed)]
    if not items:
        raise PruningError(f"Dropping blocks {list(removed)} would leave no block of {len(blocks)}.")
    if all(name.isdigit() for name, _ in blocks._modules.items()):
        items = [(str(index), child) for index, (_, child) in enumerate(items)]
    blocks._modules.clear()
    blocks._modules.update(items)
    for index, (_, child) in enumerate(items):
        for module in child.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = index
