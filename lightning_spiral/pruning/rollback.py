"""Undoing a failed pruning step: a snapshot of every submodule, and the layer a failing forward was in.

torch-pruning replaces pruned tensors by new objects and rewrites plain attributes such as
``out_channels``; transformer steps replace child modules and edit Hugging Face configs. A
:class:`ModuleSnapshot` keeps references to all of it (no copies), so
:func:`~lightning_spiral.pruning.prune` can put the model back exactly as it was when a step or
its check forward fails; :class:`LastModuleEntered` names the layer for the error message.

Example:
    >>> import torch
    >>> net = nn.Sequential(nn.Linear(4, 2))
    >>> with LastModuleEntered(net) as tracker:
    ...     _ = net(torch.randn(1, 4))
    >>> tracker.last
    '0'
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from lightning_spiral.pruning.transformer import configs_of


class ModuleSnapshot:
    """The parameters, buffers, child modules and plain attributes of every submodule, to undo a failed step.

    torch-pruning replaces pruned tensors by new objects and rewrites plain attributes such as
    ``out_channels``, so references to the old objects (no copies) are enough to put every submodule
    back as it was. The module objects themselves are kept: references the user (or an optimizer)
    holds to submodules and parameters stay valid.

    Example:
        >>> from torch import nn
        >>> layer = nn.Linear(4, 2)
        >>> weight, snapshot = layer.weight, ModuleSnapshot(layer)
        >>> layer.weight, layer.out_features = nn.Parameter(weight[:1]), 1
        >>> snapshot.restore()
        >>> layer.weight is weight, layer.out_features
        (True, 2)
    """

    _TABLES = ("_parameters", "_buffers", "_modules")

    def __init__(self, model: nn.Module) -> None:
        self._states = [(module, self._state_of(module)) for module in model.modules()]
        self._configs = [(config, dict(vars(config))) for config in configs_of(model)]  # Hugging Face configs

    @classmethod
    def _state_of(cls, module: nn.Module) -> dict[str, Any]:
        plain = {key: value for key, value in vars(module).items() if not key.startswith("_")}
        return plain | {table: dict(getattr(module, table)) for table in cls._TABLES}

    def restore(self) -> None:
        """Put every submodule back as it was when the snapshot was taken."""
        for module, state in self._states:
            for key in [key for key in vars(module) if not key.startswith("_") and key not in state]:
                del vars(module)[key]  # a plain attribute the failed step added
            for key, value in state.items():
                if key in self._TABLES:  # refill the module's own dicts: other code may hold them
                    getattr(module, key).clear()
                    getattr(module, key).update(value)
                else:
                    vars(module)[key] = value
        for config, state in self._configs:
            vars(config).clear()
            vars(config).update(state)


class LastModuleEntered:
    """Context manager recording the path of the last module whose forward started (for error messages)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.last = "<model input>"
        self._handles: list = []

    def reset(self) -> None:
        self.last = "<model input>"

    def __enter__(self) -> "LastModuleEntered":
        for name, module in self.model.named_modules():
            if name:
                self._handles.append(module.register_forward_pre_hook(lambda _m, _i, name=name: setattr(self, "last", name)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
