"""VGG with BatchNorm for 32×32 images (CIFAR), after Simonyan & Zisserman 2015.

Paper: "Very Deep Convolutional Networks for Large-Scale Image Recognition",
https://arxiv.org/abs/1409.1556. The CIFAR variant (as in Liu et al. 2017, "Network Slimming",
and most pruning papers) keeps the conv-BN-ReLU stacks and the five 2×2 max-pools, so a 32×32
input leaves a 512×1×1 map, and replaces the three large fully connected layers by one
``Linear(512, num_classes)``. A global average pool before the head makes the flatten exact for
any input side of at least 32.

Example:
    >>> import torch
    >>> net = vgg11_bn(num_classes=10)
    >>> net(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn

from lightning_spiral.checks import is_integer, refuse
from lightning_spiral.models.spec import check_classes_and_channels

# Output channels of each 3×3 conv; "M" is a 2×2 max-pool.
VGG_CONFIGS: dict[str, tuple[int | Literal["M"], ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    # half-width VGG of FACTS.md's CIFAR-10 calibration: 0.59M parameters, 43.8M MACs at 32×32
    "vgg_small": (32, 32, "M", 64, 64, "M", 128, 128, "M", 256, "M"),
}


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3×3 convolution (stride 1, same padding, no bias) followed by BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class CifarVGG(nn.Module):
    """VGG-BN feature stack from a config, global average pool, one linear head.

    Args:
        config: output channels of each conv, with ``"M"`` for a 2×2 max-pool (see ``VGG_CONFIGS``).
        num_classes: number of output logits.
        in_channels: channels of the input image.

    Example:
        >>> net = CifarVGG(VGG_CONFIGS["vgg11"], num_classes=10)
        >>> net.head
        Linear(in_features=512, out_features=10, bias=True)
    """

    def __init__(self, config: Sequence[int | Literal["M"]], num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        _check_config(config)
        check_classes_and_channels(num_classes, in_channels)
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(conv_bn_relu(channels, item))
                channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 512, H/32, W/32): 1×1 on CIFAR
        x = self.pool(x).flatten(1)  # (N, 512)
        return self.head(x)  # (N, num_classes)


def vgg11_bn(num_classes: int, in_channels: int = 3) -> CifarVGG:
    """VGG-11 with BatchNorm, CIFAR variant (about 9.2M parameters for 10 classes)."""
    return CifarVGG(VGG_CONFIGS["vgg11"], num_classes=num_classes, in_channels=in_channels)


def vgg16_bn(num_classes: int, in_channels: int = 3) -> CifarVGG:
    """VGG-16 with BatchNorm, CIFAR variant (about 14.7M parameters for 10 classes)."""
    return CifarVGG(VGG_CONFIGS["vgg16"], num_classes=num_classes, in_channels=in_channels)


def vgg_bn(num_classes: int, in_channels: int = 3, config: Sequence[int | str] = VGG_CONFIGS["vgg_small"]) -> CifarVGG:
    """A VGG-BN of any layout: ``config`` lists conv widths and ``"M"`` max-pools (default: ``vgg_small``)."""
    return CifarVGG(config, num_classes=num_classes, in_channels=in_channels)


def _check_config(config: Sequence[int | str]) -> None:
    """``config`` must be a non-empty sequence of conv widths (integers >= 1) and ``"M"`` max-pools."""
    layers = config if isinstance(config, Sequence) and not isinstance(config, (str, bytes)) else ()
    if not layers or not all(item == "M" or (is_integer(item) and item >= 1) for item in layers):
        raise refuse("config", config, "a non-empty list of conv widths (integers >= 1) and 'M' max-pools",
                     "See VGG_CONFIGS, e.g. [32, 'M', 64, 'M'].")
