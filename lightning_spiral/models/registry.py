"""The one build function for models: a registry name plus plain-JSON arguments → ``nn.Module``.

Every model built here carries a :class:`~lightning_spiral.models.spec.ModelSpec` recording the
call, so ``build_model(spec.name, input_shape=spec.input_shape, **spec.kwargs)`` rebuilds the same
architecture in a fresh process. That is how :mod:`lightning_spiral.io` reloads saved models
without unpickling code: names are looked up only in this registry (built-ins, builders added
with :func:`register_model`, and ``torchvision.<name>``), never imported from arbitrary dotted paths.

Example:
    >>> from lightning_spiral.models.spec import spec_of
    >>> net = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    >>> spec = spec_of(net)
    >>> spec.name, spec.kwargs, spec.input_shape
    ('resnet20', {'num_classes': 10}, (3, 32, 32))
    >>> twin = build_model(spec.name, input_shape=spec.input_shape, **spec.kwargs)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch.nn as nn

from lightning_spiral.checks import check_int, refuse
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models.cifar_mobilenet_v2 import CifarMobileNetV2
from lightning_spiral.models.cifar_resnet import resnet20, resnet56
from lightning_spiral.models.cifar_vgg import vgg11_bn, vgg16_bn, vgg_bn
from lightning_spiral.models.huggingface import HF_MODELS, HF_PREFIX, build_huggingface_model
from lightning_spiral.models.small_cnn import SmallCNN
from lightning_spiral.models.spec import ModelSpec, attach_spec, check_sizes
from lightning_spiral.models.torchvision_models import TORCHVISION_PREFIX, build_torchvision_model

# Each builder takes ``num_classes`` and ``in_channels`` plus its own keyword arguments.
_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "resnet20": resnet20,
    "resnet56": resnet56,
    "vgg11_bn": vgg11_bn,
    "vgg16_bn": vgg16_bn,
    "vgg_bn": vgg_bn,
    "mobilenet_v2": CifarMobileNetV2,
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)

# Smallest input side each built-in accepts: VGG max-pools five times, SmallCNN once.
_MIN_SIDE: dict[str, int] = {"small_cnn": 2, "vgg11_bn": 32, "vgg16_bn": 32}

# Filled in by the registry, never accepted from the caller.
_RESERVED = ("num_classes", "in_channels")


def build_model(name: str, num_classes: int, input_shape: Sequence[int], **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` and attach the :class:`ModelSpec` that rebuilds it.

    Args:
        name: one of :data:`MODEL_NAMES`, a name added with :func:`register_model`,
            ``"torchvision.<name>"`` for a torchvision classification model (e.g. ``"torchvision.resnet18"``),
            or ``"hf.bert"``, ``"hf.gpt2"``, ``"hf.vit"`` for a Hugging Face model built from its config
            (:mod:`~lightning_spiral.models.huggingface`; its keyword arguments are the config's).
        num_classes: number of output logits, at least 2.
        input_shape: shape of one sample, ``(C, H, W)``; ``C`` sets the model's input channels. For
            Hugging Face text models ``(sequence_length,)`` of token ids.
        **kwargs: the model's own arguments, plain JSON values only (sequences are stored as lists):
            ``widths`` for ``small_cnn``, ``width_mult`` for ``mobilenet_v2``, ``weights`` for
            torchvision models; the CIFAR ResNets and VGGs take none.

    Returns:
        The model, in training mode, with its spec attached (see :func:`~lightning_spiral.models.spec.spec_of`).

    Raises:
        SpiralConfigError: unknown name or keyword argument, or an invalid value.

    Example:
        >>> import torch
        >>> net = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8), widths=[16, 32])
        >>> net(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    if isinstance(name, str) and name.startswith(HF_PREFIX):
        return _build_huggingface(name, num_classes, input_shape, kwargs)
    builder = _builder(name)
    check_int("num_classes", num_classes, 2)
    shape = _checked_input_shape(name, input_shape)
    kwargs = {key: _plain_json(key, value) for key, value in kwargs.items()}
    allowed = [p for p in inspect.signature(builder).parameters if p not in _RESERVED]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise SpiralConfigError(
            f"Unknown keyword arguments {unknown} for model {name!r}; it accepts {allowed} "
            "(`num_classes` is given directly and the input channels come from `input_shape`)."
        )
    model = builder(num_classes=num_classes, in_channels=shape[0], **kwargs)
    return attach_spec(model, ModelSpec(name=name, kwargs={"num_classes": num_classes, **kwargs}, input_shape=shape))


def _build_huggingface(name: str, num_classes: int, input_shape: Sequence[int], kwargs: dict[str, Any]) -> nn.Module:
    kwargs = {key: _plain_json(key, value) for key, value in kwargs.items()}
    model = build_huggingface_model(name.removeprefix(HF_PREFIX), num_classes, tuple(input_shape), **kwargs)
    text = HF_MODELS[name.removeprefix(HF_PREFIX)][2] == "tokens"
    spec = ModelSpec(name=name, kwargs={"num_classes": num_classes, **kwargs}, input_shape=tuple(input_shape),
                     input_dtype="int64" if text else "float32")
    return attach_spec(model, spec)


def register_model(name: str, builder: Callable[..., nn.Module]) -> None:
    """Add ``builder`` to the registry under ``name``, so :func:`build_model`, configs and :func:`load_model` know it.

    Like the built-ins, ``builder`` takes ``num_classes`` and ``in_channels`` plus its own keyword
    arguments (plain JSON values). Register it before :func:`~lightning_spiral.load_model` reads a
    file that names it, in every process. Registering is for names in configs: a network of any
    class can also be saved unregistered and rebuilt with :func:`~lightning_spiral.restore`.

    Args:
        name: a new name, not a built-in and not starting with ``"torchvision."``.
        builder: a callable ``builder(num_classes=..., in_channels=..., **kwargs) -> nn.Module``.
            Registering the same builder again (the same object, or one of the same module and
            qualified name, as a re-run notebook cell makes) replaces it; a different one is refused.

    Raises:
        SpiralConfigError: a bad or taken name, or a builder that is not callable or lacks
            ``num_classes`` / ``in_channels``.

    Example:
        >>> from torch import nn
        >>> def tiny_mlp(num_classes: int, in_channels: int, hidden: int = 16) -> nn.Module:
        ...     return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        >>> register_model("tiny_mlp", tiny_mlp)
        >>> build_model("tiny_mlp", num_classes=10, input_shape=(1, 8, 8), hidden=8)[1].out_features
        8
    """
    if not isinstance(name, str) or not name.strip() or name.startswith(TORCHVISION_PREFIX):
        raise refuse("name", name, f"a non-empty str not starting with {TORCHVISION_PREFIX!r}")
    if name in MODEL_NAMES:
        raise SpiralConfigError(f"`name` {name!r} is a built-in model and cannot be replaced; built-ins: {list(MODEL_NAMES)}.")
    _check_builder(builder)
    registered = _BUILDERS.get(name)
    if registered is not None and _qualified_name(registered) != _qualified_name(builder):
        raise SpiralConfigError(
            f"`name` {name!r} is already registered to {_qualified_name(registered)}, got {_qualified_name(builder)}; "
            "choose another name."
        )
    _BUILDERS[name] = builder


def _check_builder(builder: Callable[..., nn.Module]) -> None:
    """``builder`` must be callable with the registry's ``num_classes`` and ``in_channels`` keywords."""
    if not callable(builder):
        raise refuse("builder", builder, "a callable returning an nn.Module")
    parameters = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    lacking = [name for name in _RESERVED if name not in parameters and not takes_any]
    if lacking:
        raise SpiralConfigError(
            f"`builder` {_qualified_name(builder)} must take the keyword arguments {list(_RESERVED)} like the built-ins; "
            f"it lacks {lacking}."
        )


def _qualified_name(builder: Callable[..., nn.Module]) -> str:
    return f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', type(builder).__name__)}"


def _builder(name: str) -> Callable[..., nn.Module]:
    """The registered builder of ``name``; torchvision names get the model name bound."""
    if isinstance(name, str) and name in _BUILDERS:
        return _BUILDERS[name]
    if isinstance(name, str) and name.startswith(TORCHVISION_PREFIX):
        return functools.partial(build_torchvision_model, name.removeprefix(TORCHVISION_PREFIX))
    # the built-ins only: the wording must not depend on what this process registered
    raise refuse("name", name, f"one of {list(MODEL_NAMES)}, 'torchvision.<name>' or 'hf.<{'|'.join(HF_MODELS)}>'")


def _checked_input_shape(name: str, input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``input_shape`` as a tuple of three positive ints, large enough for model ``name``."""
    channels, height, width = check_sizes("input_shape", input_shape, length=3, what="(C, H, W)",
                                          hint="Give one sample's shape without the batch dimension.")
    min_side = _MIN_SIDE.get(name, 1)
    if min(height, width) < min_side:
        raise refuse("input_shape", (channels, height, width), f"(C, H, W) with H and W >= {min_side} for model {name!r}")
    return channels, height, width


def _plain_json(key: str, value: Any) -> Any:
    """``value`` as plain lists and dicts; raises unless it is made of plain JSON values.

    Tuples and Hydra's ``ListConfig``/``DictConfig`` (any sequence or mapping) become lists and dicts.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [_plain_json(key, item) for item in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _plain_json(key, v) for k, v in value.items()}
    raise SpiralConfigError(
        f"`{key}` must be a plain JSON value (None, bool, int, float, str, list, dict with str keys) "
        f"so the model can be rebuilt from its spec, got {type(value).__name__}: {value!r}."
    )
