"""ResNet for 32×32 images (CIFAR), after He et al. 2016, section 4.2.

Paper: "Deep Residual Learning for Image Recognition", https://arxiv.org/abs/1512.03385.
A 3×3 stem with 16 channels, then three stages of ``n`` basic blocks with 16, 32 and 64
channels (the first block of stages 2 and 3 halves the resolution), global average pool and a
linear head: ``6n + 2`` layers (ResNet-20: n=3, ResNet-56: n=9).

Shortcuts that change shape are *projections* (1×1 conv + BatchNorm, the paper's option B), not
the zero-padding lambda of option A: torch-pruning traces modules, and a lambda hides the channel
coupling between the two branches from its dependency graph.

Example:
    >>> import torch
    >>> net = resnet20(num_classes=10)
    >>> net(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lightning_spiral.checks import is_integer, refuse
from lightning_spiral.models.spec import check_classes_and_channels

STAGE_WIDTHS = (16, 32, 64)


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers plus a shortcut; a projection shortcut when the shape changes.

    Args:
        in_channels: channels of the block input.
        out_channels: channels of the block output.
        stride: stride of the first conv (2 halves the resolution).

    Example:
        >>> block = BasicBlock(16, 32, stride=2)
        >>> block(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 32, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet of depth ``6n + 2``.

    Args:
        depth: number of weighted layers; must be ``6n + 2`` (20, 32, 44, 56, 110, ...).
        num_classes: number of output logits.
        in_channels: channels of the input image.

    Example:
        >>> sum(p.numel() for p in CifarResNet(depth=20, num_classes=10).parameters())
        272474
    """

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if not is_integer(depth) or depth < 8 or (depth - 2) % 6 != 0:
            raise refuse("depth", depth, "6n + 2 with n >= 1 (20, 32, 44, 56, ...)")
        check_classes_and_channels(num_classes, in_channels)
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(STAGE_WIDTHS[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        channels = STAGE_WIDTHS[0]
        for stage_index, width in enumerate(STAGE_WIDTHS):
            first_stride = 1 if stage_index == 0 else 2
            blocks = [BasicBlock(channels, width, first_stride)]
            blocks += [BasicBlock(width, width) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (N, 16, H, W)
        x = self.stages(x)  # (N, 64, H/4, W/4)
        x = self.pool(x).flatten(1)  # (N, 64)
        return self.head(x)  # (N, num_classes)


def resnet20(num_classes: int, in_channels: int = 3) -> CifarResNet:
    """ResNet-20 for CIFAR (about 0.27M parameters for 10 classes)."""
    return CifarResNet(depth=20, num_classes=num_classes, in_channels=in_channels)


def resnet56(num_classes: int, in_channels: int = 3) -> CifarResNet:
    """ResNet-56 for CIFAR (about 0.86M parameters for 10 classes)."""
    return CifarResNet(depth=56, num_classes=num_classes, in_channels=in_channels)
