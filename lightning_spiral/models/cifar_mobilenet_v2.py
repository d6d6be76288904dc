"""MobileNetV2 for 32×32 images (CIFAR), after Sandler et al. 2018.

Paper: "MobileNetV2: Inverted Residuals and Linear Bottlenecks", https://arxiv.org/abs/1801.04381.
The block table is the paper's (Table 2). For 32×32 inputs the stem conv and the first
stride-2 stage (24 channels) use stride 1, so the network downsamples 8× instead of 32× and ends
on a 4×4 map, the usual CIFAR adaptation. ``width_mult`` scales every layer's channels, rounded
to a multiple of 8 as in the paper's reference code; the 1280-channel last conv only grows.

Example:
    >>> import torch
    >>> net = CifarMobileNetV2(num_classes=10, width_mult=0.5)
    >>> net(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lightning_spiral.checks import check_positive
from lightning_spiral.models.spec import check_classes_and_channels

# (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper with the
# stem and the 24-channel stage at stride 1 for 32×32 inputs.
CIFAR_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going below 90% of it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    """Conv (same padding, no bias) → BatchNorm → ReLU6, the unit every MobileNetV2 layer is built from."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1×1) → depthwise (3×3) → linear project (1×1); identity shortcut when shapes match.

    Args:
        in_channels: channels of the block input.
        out_channels: channels of the block output.
        stride: stride of the depthwise conv.
        expansion: hidden channels are ``in_channels * expansion``; 1 skips the expand conv.

    Example:
        >>> block = InvertedResidual(16, 16, stride=1, expansion=6)
        >>> block(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_relu6(in_channels, hidden, kernel_size=1))
        layers += [
            conv_bn_relu6(hidden, hidden, kernel_size=3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.block = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_shortcut else out


class CifarMobileNetV2(nn.Module):
    """MobileNetV2 with a stride-1 stem for 32×32 inputs.

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input image.
        width_mult: multiplier of every layer's channels (1.0 is the paper's network).

    Example:
        >>> net = CifarMobileNetV2(num_classes=10)
        >>> round(sum(p.numel() for p in net.parameters()) / 1e6, 2)
        2.24
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width_mult: float = 1.0) -> None:
        super().__init__()
        check_classes_and_channels(num_classes, in_channels)
        check_positive("width_mult", width_mult, hint="1.0 is the paper's network; 0.5 halves every layer's channels.")
        channels = make_divisible(STEM_CHANNELS * width_mult)
        layers: list[nn.Module] = [conv_bn_relu6(in_channels, channels, kernel_size=3)]
        for expansion, width, repeats, first_stride in CIFAR_BLOCKS:
            out_channels = make_divisible(width * width_mult)
            for index in range(repeats):
                stride = first_stride if index == 0 else 1
                layers.append(InvertedResidual(channels, out_channels, stride, expansion))
                channels = out_channels
        last_channels = make_divisible(LAST_CHANNELS * max(1.0, width_mult))
        layers.append(conv_bn_relu6(channels, last_channels, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(last_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 1280, H/8, W/8)
        x = self.pool(x).flatten(1)  # (N, 1280)
        return self.head(x)  # (N, num_classes)
