"""Architecture-as-data: what is needed to rebuild a (pruned) model without unpickling code.

A :class:`ModelSpec` travels with a model as an attribute. It names the architecture by the
registry of :func:`lightning_spiral.models.build_model` (a name plus keyword arguments, all plain
JSON values), the input shape used to trace it, and torch-pruning's pruning history — the list of
``[module_name, is_out_channel_pruning, channel_indices]`` steps that turn the freshly built
architecture into the pruned one. :mod:`lightning_spiral.io` stores the spec next to the weights.

Example:
    >>> import torch.nn as nn
    >>> net = attach_spec(nn.Linear(4, 2), ModelSpec(name="my_linear", kwargs={}, input_shape=(4,)))
    >>> spec_of(net).name
    'my_linear'
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch.nn as nn

from lightning_spiral.errors import ModelFormatError

_SPEC_ATTRIBUTE = "_lightning_spiral_spec"

PruningStep = list  # [module_name: str, is_out_channel_pruning: bool, indices: list[int]]


@dataclasses.dataclass
class ModelSpec:
    """How to rebuild a model: registry name, build arguments, input shape, pruning history.

    Args:
        name: architecture name understood by :func:`lightning_spiral.models.build_model`.
        kwargs: keyword arguments of the build call (plain JSON values only).
        input_shape: shape of one input sample, without the batch dimension (e.g. ``(3, 32, 32)``).
        pruning_history: torch-pruning steps applied since the model was built, in order.
    """

    name: str
    kwargs: dict[str, Any]
    input_shape: tuple[int, ...]
    pruning_history: list[PruningStep] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form, safe for JSON and for ``torch.load(weights_only=True)``."""
        return {
            "name": self.name,
            "kwargs": dict(self.kwargs),
            "input_shape": list(self.input_shape),
            "pruning_history": [list(step) for step in self.pruning_history],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        """Inverse of :meth:`to_dict`; raises :class:`ModelFormatError` on a malformed dict."""
        missing = {"name", "kwargs", "input_shape", "pruning_history"} - set(data)
        if missing:
            raise ModelFormatError(f"Model spec is missing the keys {sorted(missing)}; found {sorted(data)}.")
        return cls(
            name=str(data["name"]),
            kwargs=dict(data["kwargs"]),
            input_shape=tuple(int(d) for d in data["input_shape"]),
            pruning_history=[
                [str(name), bool(is_out), [int(i) for i in idxs]] for name, is_out, idxs in data["pruning_history"]
            ],
        )


def attach_spec(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """Attach ``spec`` to ``model`` (it then survives ``copy.deepcopy``) and return the model."""
    object.__setattr__(model, _SPEC_ATTRIBUTE, spec)
    return model


def spec_of(model: nn.Module) -> ModelSpec | None:
    """The :class:`ModelSpec` attached to ``model``, or ``None`` for a model built elsewhere."""
    return getattr(model, _SPEC_ATTRIBUTE, None)
