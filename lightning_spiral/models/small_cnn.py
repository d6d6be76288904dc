"""A small conv-BN-ReLU network for tiny gray images such as scikit-learn's 8×8 digits.

Not from a paper: it is the fastest real model in the package, sized so that a spiral run on
the embedded digits data set finishes in seconds on a CPU. It is a miniature VGG (it reuses
:func:`~lightning_spiral.models.cifar_vgg.conv_bn_relu`): every block is conv → BatchNorm → ReLU.

Example:
    >>> import torch
    >>> net = SmallCNN(num_classes=10, in_channels=1)
    >>> net(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from lightning_spiral.models.cifar_vgg import conv_bn_relu
from lightning_spiral.models.spec import check_classes_and_channels, check_sizes


class SmallCNN(nn.Module):
    """Conv-BN-ReLU blocks, one 2×2 max-pool after the second block, global average pool, linear head.

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input image (1 for digits).
        widths: output channels of each conv block, in order (at least two blocks: the max-pool
            follows the second one).

    Example:
        >>> net = SmallCNN(num_classes=10, in_channels=1, widths=(8, 16))
        >>> net.head
        Linear(in_features=16, out_features=10, bias=True)
    """

    def __init__(self, num_classes: int, in_channels: int = 1, widths: Sequence[int] = (32, 64, 64)) -> None:
        super().__init__()
        check_classes_and_channels(num_classes, in_channels)
        widths = check_sizes("widths", widths, min_length=2, hint="The max-pool follows the second block.")
        blocks: list[nn.Module] = []
        channels = in_channels
        for index, width in enumerate(widths):
            blocks.append(conv_bn_relu(channels, width))
            if index == 1:
                blocks.append(nn.MaxPool2d(2))  # 8×8 → 4×4 on digits
            channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, widths[-1], H/2, W/2)
        x = self.pool(x).flatten(1)  # (N, widths[-1])
        return self.head(x)  # (N, num_classes)
