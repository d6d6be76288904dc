"""Feature taps: read a module's input or output by its path, through forward hooks, for distillation.

``FeatureTaps(model, ["layer3", "features.10"])`` records what those modules produce on every
forward pass. Hooks hang on the module objects, so they survive structural pruning (paths stay the
same, widths change). One manager per network; ``close()`` removes the hooks.

Example:
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> taps = FeatureTaps(net, ["0", "2"])
    >>> _ = net(torch.randn(5, 4))
    >>> {path: tuple(t.shape) for path, t in taps.features.items()}
    {'0': (5, 3), '2': (5, 2)}
    >>> taps.close()
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn as nn

from lightning_spiral.errors import SpiralConfigError

TapKind = Literal["output", "input"]


def parse_tap(path: str) -> tuple[str, TapKind]:
    """``"layer3"`` -> (``"layer3"``, output); ``"layer3:input"`` -> (``"layer3"``, input)."""
    name, _, kind = path.partition(":")
    kind = kind or "output"
    if kind not in ("output", "input"):
        raise SpiralConfigError(f"Feature path {path!r} must end in ':output' or ':input' (or neither), got {kind!r}.")
    return name, kind  # type: ignore[return-value]


class FeatureTaps:
    """Forward hooks that keep the latest input/output tensor of modules addressed by path.

    Args:
        model: the network to tap.
        paths: module paths as in ``model.named_modules()``, each optionally suffixed with
            ``":input"`` (the module's first positional input) or ``":output"`` (the default).
    """

    def __init__(self, model: nn.Module, paths: Iterable[str]) -> None:
        self.features: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        modules = dict(model.named_modules())
        for path in dict.fromkeys(paths):
            name, kind = parse_tap(path)
            if name not in modules:
                examples = [n for n in modules if n][:6]
                raise SpiralConfigError(
                    f"Feature path {path!r} is not a module of {type(model).__name__}; module paths look like {examples}."
                )
            self._handles.append(self._register(modules[name], path, kind))

    def _register(self, module: nn.Module, path: str, kind: TapKind) -> torch.utils.hooks.RemovableHandle:
        if kind == "input":
            return module.register_forward_pre_hook(lambda _m, inputs: self.features.__setitem__(path, inputs[0]))
        return module.register_forward_hook(lambda _m, _inputs, output: self.features.__setitem__(path, output))

    def close(self) -> None:
        """Remove every hook and forget the stored tensors."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.features.clear()
