"""Quantization-aware fine-tuning that lands on ONNX Runtime's INT8 grid.

:func:`add_fake_quant` makes every Conv and Linear layer see the rounding the INT8 runtime will
apply (Jacob et al. 2018, https://arxiv.org/abs/1712.05877), with straight-through gradients:

- weights: per-output-channel symmetric int8, ``scale = max|w| / 127`` over the channel, integers
  in [-127, 127] — the exact rule of ONNX Runtime's per-channel QInt8 weights;
- inputs: per-tensor asymmetric int8 in [-128, 127] over a range that covers 0, tracked as an
  exponential moving average of each batch's min and max while training and frozen in eval mode —
  what min/max calibration measures.

After fine-tuning, :func:`remove_fake_quant` bakes the fake-quantized weights into plain float
weights and drops the observers, leaving the original architecture. Those weights sit on the int8
grid, so the normal post-training path (export to ONNX, then ``quantize_int8`` with calibration)
reproduces them exactly: a QAT model is served by the same runtime and the same file format as a
PTQ one. No deprecated ``torch.ao.quantization`` module and no torchao graph is involved.

Example:
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
    >>> fake = add_fake_quant(net)
    >>> _ = fake(torch.randn(8, 1, 8, 8))
    >>> plain = remove_fake_quant(fake)
    >>> sorted(plain.state_dict()) == sorted(net.state_dict())
    True
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from lightning_spiral.checks import check_interval
from lightning_spiral.module_network import check_network

_QUANTIZED_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)
_OBSERVER = "input_fake_quant"
_MOMENTUM_HINT = "It is the weight of the newest batch in the moving average of the input range, e.g. 0.1."


class WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric int8 fake quantization of a weight (a ``parametrize`` module).

    Example:
        >>> w = torch.tensor([[0.5, -1.0], [0.01, 0.02]])
        >>> WeightFakeQuant()(w)[0].tolist()
        [0.5039370059967041, -1.0]
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # weight: (out_channels, ...); one scale per output channel
        reduce = tuple(range(1, weight.dim()))
        scale = (weight.detach().abs().amax(dim=reduce) / 127.0).clamp_min(1e-12).float()
        zero_point = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -127, 127)


class ActivationFakeQuant(nn.Module):
    """Per-tensor asymmetric int8 fake quantization with a moving-average min/max observer.

    Args:
        momentum: weight of the newest batch in the moving average of the range.

    Example:
        >>> fq = ActivationFakeQuant()
        >>> _ = fq(torch.tensor([-1.0, 0.0, 3.0]))
        >>> fq.low.item(), fq.high.item()
        (-1.0, 3.0)
    """

    def __init__(self, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = check_interval("momentum", momentum, "(0, 1]", hint=_MOMENTUM_HINT)
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("observed", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self._observe(x.detach())
        if not bool(self.observed):
            return x  # nothing seen yet (eval before any training batch): no range to round to
        low, high = torch.clamp(self.low, max=0.0), torch.clamp(self.high, min=0.0)  # 0 must be exact
        scale = float(max((high - low).item() / 255.0, 1e-12))
        zero_point = int(round(-128 - low.item() / scale))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, -128, 127)

    def _observe(self, x: torch.Tensor) -> None:
        low, high = x.min(), x.max()
        if not bool(self.observed):
            self.low.copy_(low)
            self.high.copy_(high)
            self.observed.fill_(True)
        else:
            self.low.lerp_(low, self.momentum)
            self.high.lerp_(high, self.momentum)


def add_fake_quant(model: nn.Module, momentum: float = 0.1) -> nn.Module:
    """A copy of ``model`` whose Conv and Linear layers fake-quantize their weights and inputs."""
    check_network("model", model)
    check_interval("momentum", momentum, "(0, 1]", hint=_MOMENTUM_HINT)
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, _QUANTIZED_LAYERS):
            parametrize.register_parametrization(module, "weight", WeightFakeQuant())
            observer = ActivationFakeQuant(momentum)
            module.add_module(_OBSERVER, observer)
            observer.hook = module.register_forward_pre_hook(_quantize_input)  # removed with the observer
    return model


def remove_fake_quant(model: nn.Module) -> nn.Module:
    """Bake the fake-quantized weights into ``model`` (in place) and drop observers and hooks."""
    check_network("model", model)
    for module in model.modules():
        if isinstance(module, _QUANTIZED_LAYERS) and hasattr(module, _OBSERVER):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            getattr(module, _OBSERVER).hook.remove()
            delattr(module, _OBSERVER)
    return model


def _quantize_input(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (getattr(module, _OBSERVER)(args[0]), *args[1:])
