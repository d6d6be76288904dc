"""One torch-pruning step, as plain values: the pruner lightning-spiral runs for channel pruning.

:class:`RoundingMetaPruner` is torch-pruning's ``MetaPruner`` with a ``round_to`` that never rounds a
layer to zero channels; :func:`torch_pruning_step` runs it once and returns the pruning history as
``[module_name, is_out_channel_pruning, indices]`` lists that a model file stores and replays.

Example:
    >>> import torch
    >>> from lightning_spiral.models import build_model
    >>> net = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    >>> steps = torch_pruning_step(net, torch.randn(1, 1, 8, 8), dict(
    ...     importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5, ignored_layers=[net.head]))
    >>> sorted({name for name, _, _ in steps}), net.features[0][0].out_channels
    (['features.0.0', 'features.1.0', 'features.3.0'], 16)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch_pruning as tp

from lightning_spiral.models.pruning_fixups import sync_after_pruning
from lightning_spiral.models.spec import PruningStep


def torch_pruning_step(model: nn.Module, example_inputs: torch.Tensor, pruner_options: dict[str, Any]) -> list[PruningStep]:
    """One torch-pruning step; the steps as plain values (``[module_name, is_out_channel_pruning, indices]``)."""
    pruner = RoundingMetaPruner(model, example_inputs, **pruner_options)
    pruner.step()
    sync_after_pruning(model)
    return [[str(name), bool(is_out), [int(i) for i in torch.as_tensor(idxs).flatten().tolist()]]
            for name, is_out, idxs in pruner.pruning_history()]


class RoundingMetaPruner(tp.pruner.MetaPruner):
    """torch-pruning's ``MetaPruner`` whose ``round_to`` never rounds a layer down to zero channels.

    torch-pruning 1.6 rounds the kept channel count *down* to a multiple of ``round_to``; a layer
    that would keep fewer than ``round_to`` channels rounds to zero, and a layer cannot lose all its
    channels, so it is left unpruned. Large amounts then prune *less*: removing 90% of a CIFAR VGG's
    channels with ``round_to=8`` kept 57.5% of its MACs. Here such a layer keeps ``round_to`` channels,
    the rule torch-pruning's older ``round_pruning_amount`` had (VainF/Torch-Pruning#49).
    """

    def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
        kept = current_channels - n_pruned
        kept = max(kept - kept % round_to, min(round_to, current_channels))
        return max(current_channels - kept, 0)
