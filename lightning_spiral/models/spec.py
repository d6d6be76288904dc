"""Architecture-as-data: what is needed to rebuild a (pruned) model without unpickling code.

A :class:`ModelSpec` travels with a model as an attribute (it survives ``copy.deepcopy``) and is
stored next to the weights by :mod:`lightning_spiral.io`. It always records torch-pruning's
pruning history — the ``[module_name, is_out_channel_pruning, channel_indices]`` steps that turn
the freshly built network into the pruned one — and the shape and dtype of the example input the
network was traced with (``"int64"`` for token ids), which replaying the history needs again.

A registry model also has a ``name`` and build ``kwargs`` (plain JSON values), so
:func:`lightning_spiral.load_model` builds it alone. A network of the user's own class has
``name=None`` and ``kwargs=None``: the user constructs the instance and
:func:`lightning_spiral.restore` replays the history on it. ``network_class`` (``"pkg.mod.Class"``)
only words error messages; nothing is ever imported from it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> _ = attach_spec(net, ModelSpec(input_shape=(4,)))
    >>> spec = spec_of(net)
    >>> spec.name, spec.network_class, spec.input_dtype
    (None, 'torch.nn.modules.container.Sequential', 'float32')
    >>> example_for(spec, net).shape
    torch.Size([1, 4])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from lightning_spiral.checks import check_int, is_integer, refuse
from lightning_spiral.errors import ModelFormatError

_SPEC_ATTRIBUTE = "_lightning_spiral_spec"

# [module_name: str, is_out_channel_pruning: bool, indices: list[int]] — a torch-pruning step — or
# [module_path: str, kind: "heads" | "mlp" | "blocks", removed: list[int]] — a transformer step.
PruningStep = list


@dataclasses.dataclass
class ModelSpec:
    """How to rebuild a model: registry name and build arguments (if any), traced input, pruning history.

    Args:
        name: architecture name understood by :func:`lightning_spiral.models.build_model`;
            ``None`` for a network of the user's own class.
        kwargs: keyword arguments of the build call (plain JSON values); ``None`` exactly when ``name`` is.
        input_shape: shape of one input sample, without the batch dimension (e.g. ``(3, 32, 32)``);
            ``None`` only for a never-pruned network of the user's class (nothing to replay).
        pruning_history: torch-pruning steps applied since the model was built, in order.
        input_dtype: dtype of the traced input, as a ``torch`` attribute name (``"float32"``, ``"int64"``).
        network_class: ``module.QualName`` of the network, for messages only (not compared, never imported).
    """

    name: str | None = None
    kwargs: dict[str, Any] | None = None
    input_shape: tuple[int, ...] | None = None
    pruning_history: list[PruningStep] = dataclasses.field(default_factory=list)
    input_dtype: str = "float32"
    network_class: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.name is None) != (self.kwargs is None):
            raise ModelFormatError(
                f"A model spec has `name` and `kwargs` both or neither, got {self.name!r} and {self.kwargs!r}."
            )
        if self.pruning_history and self.input_shape is None:
            raise ModelFormatError("A model spec with a pruning history needs the `input_shape` it was traced with.")
        if not isinstance(getattr(torch, self.input_dtype, None), torch.dtype):
            raise ModelFormatError(
                f"`input_dtype` must name a torch dtype such as 'float32' or 'int64', got {self.input_dtype!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form, safe for JSON and for ``torch.load(weights_only=True)``."""
        return {
            "name": self.name,
            "kwargs": None if self.kwargs is None else dict(self.kwargs),
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "input_dtype": self.input_dtype,
            "pruning_history": [list(step) for step in self.pruning_history],
            "network_class": self.network_class,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        """Inverse of :meth:`to_dict`, also for files written before ``input_dtype`` and ``network_class``.

        Raises:
            ModelFormatError: a key is missing or a value has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ModelFormatError(f"A model spec must be a dict of plain values, got {type(data).__name__}.")
        missing = {"name", "kwargs", "input_shape", "pruning_history"} - set(data)
        if missing:
            raise ModelFormatError(f"Model spec is missing the keys {sorted(missing)}; found {sorted(data)}.")
        try:
            return cls(
                name=None if data["name"] is None else str(data["name"]),
                kwargs=None if data["kwargs"] is None else dict(data["kwargs"]),
                input_shape=None if data["input_shape"] is None else tuple(int(d) for d in data["input_shape"]),
                pruning_history=[_step(step) for step in data["pruning_history"]],
                input_dtype=str(data.get("input_dtype", "float32")),
                network_class=data.get("network_class"),
            )
        except (TypeError, ValueError) as err:
            raise ModelFormatError(f"Model spec has a malformed value ({type(err).__name__}: {err}).") from err


_TRANSFORMER_STEPS = ("heads", "mlp", "blocks")


def _step(step: Sequence[Any]) -> PruningStep:
    """One history step as plain values; a transformer step keeps its kind string."""
    name, kind, indices = step
    if isinstance(kind, str) and kind not in _TRANSFORMER_STEPS:
        raise ValueError(f"unknown step kind {kind!r}, expected one of {list(_TRANSFORMER_STEPS)} or a bool")
    return [str(name), kind if isinstance(kind, str) else bool(kind), [int(i) for i in indices]]


def attach_spec(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """Attach ``spec`` to ``model`` (it then survives ``copy.deepcopy``), naming its class; return the model."""
    spec.network_class = class_path(model)
    object.__setattr__(model, _SPEC_ATTRIBUTE, spec)
    return model


def spec_of(model: nn.Module) -> ModelSpec | None:
    """The :class:`ModelSpec` attached to ``model``, or ``None`` for a network never built or pruned by us."""
    return getattr(model, _SPEC_ATTRIBUTE, None)


def record_of(model: nn.Module) -> ModelSpec:
    """``model``'s spec, or an empty one (user class, no history) attached now for a network that has none."""
    spec = spec_of(model)
    if spec is None:
        attach_spec(model, spec := ModelSpec())
    return spec


def record_pruning(model: nn.Module, steps: list[PruningStep], example_inputs: torch.Tensor) -> None:
    """Append ``steps`` to ``model``'s record; the first pruning of a user's network records its traced input."""
    spec = record_of(model)
    if spec.input_shape is None:
        spec.input_shape = tuple(int(d) for d in example_inputs.shape[1:])
        spec.input_dtype = str(example_inputs.dtype).removeprefix("torch.")
    spec.pruning_history.extend(steps)


def example_for(spec: ModelSpec, model: nn.Module) -> torch.Tensor:
    """A batch of one input of the recorded shape and dtype on ``model``'s device, to trace it again.

    Zeros for float inputs; token id 1 for integer ones (id 0 is padding, which masks every position).
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return sample_batch((1, *(spec.input_shape or ())), getattr(torch, spec.input_dtype), device, random=False)


def random_input(model: nn.Module, input_shape: Sequence[int], batch_size: int,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """A batch ``(batch_size, *input_shape)`` that ``model`` takes: random floats, or token id 1 for a text model.

    The dtype is the one ``model``'s record was traced with (``"int64"`` for Hugging Face text
    models); id 1 is in every vocabulary and is no padding, so every position is attended to.

    Example:
        >>> from torch import nn
        >>> random_input(nn.Linear(4, 2), (4,), 3).shape
        torch.Size([3, 4])
    """
    spec = spec_of(model)
    return sample_batch((batch_size, *input_shape), getattr(torch, spec.input_dtype) if spec is not None else torch.float32,
                        device)


def sample_batch(shape: Sequence[int], dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", *,
                 random: bool = True) -> torch.Tensor:
    """A batch of ``shape``: random (or zero) floats, or token id 1 for an integer dtype.

    Id 1 is in every vocabulary and is no padding (id 0 masks a position out), so every position is attended to.

    Example:
        >>> sample_batch((1, 4), torch.int64).tolist()
        [[1, 1, 1, 1]]
    """
    if not dtype.is_floating_point:
        return torch.ones(tuple(shape), dtype=dtype, device=device)
    return (torch.randn if random else torch.zeros)(tuple(shape), dtype=dtype, device=device)


def class_path(model: nn.Module) -> str:
    """``module.QualName`` of ``model``'s class, e.g. ``'my_project.nets.ConvNet'``."""
    return f"{type(model).__module__}.{type(model).__qualname__}"


def check_sizes(name: str, value: Any, *, length: int | None = None, min_length: int = 1, what: str = "",
                hint: str = "") -> tuple[int, ...]:
    """A sequence of integers >= 1 (an input shape, layer widths), as a tuple; raises naming ``name``.

    ``length`` asks for exactly that many; otherwise at least ``min_length``. ``what`` says what the
    entries are (``"(C, H, W)"``).

    Example:
        >>> check_sizes("input_shape", [3, 32, 32], length=3, what="(C, H, W)")
        (3, 32, 32)
        >>> check_sizes("widths", [8], min_length=2)
        Traceback (most recent call last):
            ...
        lightning_spiral.errors.SpiralConfigError: `widths` must be a sequence of at least 2 integers >= 1, got [8].
    """
    sizes = tuple(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else None
    fits = sizes is not None and (len(sizes) == length if length is not None else len(sizes) >= min_length)
    if not fits or not all(is_integer(size) and size >= 1 for size in sizes):
        count = f"{length}" if length is not None else ("a non-empty sequence of" if min_length <= 1 else
                                                        f"a sequence of at least {min_length}")
        raise refuse(name, value, f"{count} integers >= 1{' ' + what if what else ''}", hint)
    return sizes


def check_classes_and_channels(num_classes: Any, in_channels: Any) -> None:
    """The two arguments every built-in network takes: ``num_classes`` and ``in_channels``, integers >= 1."""
    check_int("num_classes", num_classes, 1, hint="It is the number of output logits.")
    check_int("in_channels", in_channels, 1, hint="It is the number of channels of the input image.")
