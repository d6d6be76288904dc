"""Architecture facts that structural pruning must respect, kept out of the generic pruning core.

Some models cache a width as a plain Python attribute or need channel counts in multiples of a
head count. torch-pruning rewrites tensors and layer attributes, not such model-level values:

- torchvision ``VisionTransformer``: ``hidden_dim`` is used in ``forward`` to reshape the patch
  embedding, and the embedding width must stay a multiple of the number of attention heads.

Example:
    >>> import torchvision
    >>> vit = torchvision.models.vit_b_16(num_classes=10)
    >>> channel_multiple(vit)
    12
"""

from __future__ import annotations

import torch.nn as nn
from torchvision.models.vision_transformer import VisionTransformer


def channel_multiple(model: nn.Module) -> int | None:
    """The number every pruned width of ``model`` must be a multiple of, or ``None`` for no constraint."""
    if isinstance(model, VisionTransformer):
        return model.encoder.layers[0].num_heads
    return None


def sync_after_pruning(model: nn.Module) -> None:
    """Update model-level attributes that cache a width, after its layers were pruned."""
    if isinstance(model, VisionTransformer):
        model.hidden_dim = model.conv_proj.out_channels
