"""Plain, JSON-ready descriptions of the objects that shape a run, for the settings record.

A description names the object's class (``_target_``, as in a Hydra config) and the values of its
constructor arguments, found as attributes of the same name (``KDLoss(temperature=4.0)`` stores
``self.temperature``), recursively: a :class:`~lightning_spiral.distill.WeightedSum` shows every
term with its temperature, a partial its bound keywords over its signature defaults, a data file
its size and SHA-256. Two runs with equal descriptions were built from equal settings.

Example:
    >>> import functools, torch
    >>> from lightning_spiral.distill import KDLoss
    >>> describe(KDLoss(temperature=2.0, alpha=0.5))
    {'_target_': 'lightning_spiral.distill.kd.KDLoss', 'temperature': 2.0, 'alpha': 0.5}
    >>> describe(functools.partial(torch.optim.SGD, lr=0.1))["lr"]
    0.1
"""

from __future__ import annotations

import enum
import functools
import hashlib
import inspect
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

PLAIN = (str, int, bool, type(None))


def describe(value: Any) -> Any:
    """``value`` as plain JSON values (see the module docstring)."""
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, os.PathLike):
        return describe_path(Path(value))
    if isinstance(value, Mapping):
        return {str(key): describe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, nn.ModuleList)):
        return [describe(item) for item in value]
    if isinstance(value, torch.Tensor):
        return {"_tensor_": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, functools.partial):
        return describe_partial(value)
    if isinstance(value, type) or inspect.isroutine(value):
        return target_name(value)
    if isinstance(value, (torch.device, torch.dtype, enum.Enum)):
        return str(value)
    return describe_object(value)


def target_name(obj: Any) -> str:
    """``module.QualName`` of a class or function."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def constructor_arguments(cls: type) -> list[inspect.Parameter]:
    """The named parameters of ``cls.__init__`` (not ``self``, ``*args``, ``**kwargs``)."""
    try:
        parameters = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p for p in parameters if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def describe_object(obj: Any) -> dict[str, Any]:
    """Class name plus every constructor argument kept as an attribute (Lightning ``hparams`` too)."""
    described: dict[str, Any] = {"_target_": target_name(type(obj))}
    for parameter in constructor_arguments(type(obj)):
        if parameter.name in vars(obj) or parameter.name in getattr(obj, "_modules", {}):
            described[parameter.name] = describe(getattr(obj, parameter.name))
    hparams = getattr(obj, "hparams", None)
    if isinstance(hparams, Mapping):
        described.update({key: describe(item) for key, item in hparams.items() if key not in described})
    return described


def describe_partial(partial: functools.partial) -> dict[str, Any]:
    """A partial's target, its signature defaults, and the keywords it binds over them."""
    described: dict[str, Any] = {"_target_": target_name(partial.func)}
    target = partial.func.__init__ if isinstance(partial.func, type) else partial.func
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        parameters = []
    described.update({p.name: describe(p.default) for p in parameters if p.default is not inspect.Parameter.empty})
    described.update({name: describe(value) for name, value in partial.keywords.items()})
    return described


def describe_path(path: Path) -> Any:
    """A file as its path, size and SHA-256; a folder as its path, file count and total size."""
    if path.is_file():
        return {"path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
        return {"path": str(path), "files": len(files), "bytes": sum(p.stat().st_size for p in files)}
    return str(path)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_network(network: nn.Module | None) -> dict[str, Any] | None:
    """A network by its class, parameter count and the SHA-256 of its parameter shapes (not its weights)."""
    if network is None:
        return None
    shapes = ";".join(f"{name}:{tuple(p.shape)}" for name, p in network.state_dict().items())
    return {"_target_": target_name(type(network)), "parameters": sum(p.numel() for p in network.parameters()),
            "shapes_sha256": hashlib.sha256(shapes.encode()).hexdigest()[:16]}


def flatten(described: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested descriptions as dotted keys: ``{"pruning": {"round_to": 8}}`` -> ``{"pruning.round_to": 8}``."""
    flat: dict[str, Any] = {}
    for key, value in described.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
