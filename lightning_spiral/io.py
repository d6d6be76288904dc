"""Save any (pruned) network and rebuild it without pickling code.

A model file holds plain data only, so ``torch.load(..., weights_only=True)`` reads it and a file
from a colleague cannot run code on your machine:

- ``format``: the file format tag (``"lightning-spiral-model/2"``; ``/1`` files still load);
- ``spec``: the :class:`~lightning_spiral.models.spec.ModelSpec` record — torch-pruning's pruning
  history, the traced input's shape and dtype, and for a registry model its name and build arguments;
- ``state_dict``: the weights, as CPU tensors.

Two ways back, the pattern of NVIDIA ModelOpt's ``save``/``restore``: :func:`restore` takes a
freshly constructed instance of *your* class and replays the pruning history on it through
torch-pruning's dependency graph; :func:`load_model` builds a registry model alone (the
architecture comes from the registry, never from an import path stored in the file). Then the
weights are loaded strictly. Files are written atomically. :func:`restore_checkpoint` does the
same for a Lightning checkpoint written during a fit with :class:`~lightning_spiral.PruningCallback`,
which stores the pruned network's record in it (:mod:`lightning_spiral.model_record`).

:func:`load_teacher` also takes a trained network from files other tools write: a Lightning
checkpoint (``.ckpt``) of a :class:`~lightning_spiral.SpiralModule` (architecture from the specs it
stores) or of a user's LightningModule whose network sits under an attribute (``attr="net"``), or
a plain state dict (``torch.save(net.state_dict(), "net.pt")``). The last two hold weights only,
so the caller passes the architecture to load them into.

Example:
    >>> import tempfile, torch
    >>> from torch import nn
    >>> from lightning_spiral.pruning import prune
    >>> def make_net() -> nn.Module:  # your own class, with your constructor arguments
    ...     return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> net = prune(make_net(), torch.randn(1, 8), amount=0.5)
    >>> path = tempfile.mkdtemp() + "/net.pt"
    >>> save_model(net, path)
    >>> restore(make_net(), path)[0].out_features
    8

    A registry model needs no instance: ``load_model`` builds it from the file.

    >>> from lightning_spiral.models import build_model
    >>> cnn = prune(build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)), torch.randn(1, 1, 8, 8), amount=0.5)
    >>> save_model(cnn, path)
    >>> load_model(path).features[0][0].out_channels
    16
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from lightning_spiral.atomic import atomic_torch_save
from lightning_spiral.checks import refuse
from lightning_spiral.errors import ModelFormatError, SpiralConfigError, SpiralError
from lightning_spiral.model_record import (
    MODEL_FILE,
    PRUNED_NETWORKS_KEY,
    check_unpruned,
    describe,
    load_weights,
    read_file,
    record_dict,
    replay_history,
    same_class_hint,
)
from lightning_spiral.models import build_model
from lightning_spiral.models.spec import ModelSpec
from lightning_spiral.module_network import check_network, shown

#: Format tag of files :func:`save_model` writes; ``/2`` added records of networks of the user's own class.
MODEL_FORMAT = "lightning-spiral-model/2"
READABLE_FORMATS = ("lightning-spiral-model/1", MODEL_FORMAT)
#: Key of the architecture specs in a Lightning checkpoint of a SpiralModule.
CHECKPOINT_KEY = "lightning_spiral_specs"
#: Where a SpiralModule keeps the network it trains (stage 0 trains the teacher as its student).
SPIRAL_MODULE_ATTR = "student"
#: What :func:`load_teacher` and :func:`restore_checkpoint` expect, for their messages.
TEACHER_FILE = "lightning-spiral model file, Lightning checkpoint or state dict (written by save_model or torch.save)"
CHECKPOINT_FILE = "Lightning checkpoint (.ckpt, written by a Trainer)"


def save_model(model: nn.Module, path: str | os.PathLike) -> None:
    """Write ``model``'s weights and its record (pruning history, traced input) to ``path`` atomically.

    Any network can be saved, pruned or not. A registry model
    (:func:`lightning_spiral.models.build_model`) reloads alone with :func:`load_model`; a network
    of your own class reloads with :func:`restore` onto a fresh instance of that class.
    """
    check_network("model", model)
    path = _as_path(path)
    state_dict = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    atomic_torch_save({"format": MODEL_FORMAT, "spec": record_dict(model), "state_dict": state_dict}, path)


def load_model(path: str | os.PathLike) -> nn.Module:
    """Rebuild the registry model saved at ``path`` by :func:`save_model`, in eval mode, on the CPU.

    Raises:
        ModelFormatError: the file is not a model file, or holds a network of your own class
            (then use :func:`restore`).
    """
    path = _as_path(path)
    spec, state = _model_file(path)
    if spec.name is None:
        saved = spec.network_class or "your own class"
        raise ModelFormatError(
            f"{str(path)!r} holds a network of {saved} (no registry name), which cannot be built from the file "
            f"alone: construct one and call `lightning_spiral.restore({saved.rsplit('.', 1)[-1]}(...), path)`."
        )
    model = rebuild(spec)
    load_weights(model, state, path, "")
    return model.eval()


def restore(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Rebuild the network saved at ``path`` on ``model``, a freshly constructed instance of its class.

    The recorded pruning history is replayed on ``model`` through torch-pruning's dependency graph
    (its layers shrink to the saved shapes), then the weights are loaded strictly. The file is read
    with ``torch.load(weights_only=True)``: nothing is unpickled, your class comes from your code.

    Args:
        model: an unpruned instance built with the saved network's class and constructor arguments.
        path: a :func:`save_model` file.

    Returns:
        ``model`` itself, pruned to the saved shapes, with the saved weights, in eval mode.

    Raises:
        SpiralConfigError: ``model`` is not an ``nn.Module`` or was pruned already.
        ModelFormatError: the file is unreadable, or its history or weights do not fit ``model``.

    Example:
        >>> import tempfile, torch
        >>> from lightning_spiral.models import build_model
        >>> from lightning_spiral.pruning import prune
        >>> net = prune(build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)), torch.randn(1, 1, 8, 8), amount=0.5)
        >>> path = tempfile.mkdtemp() + "/net.pt"
        >>> save_model(net, path)
        >>> restore(build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)), path).training
        False
    """
    check_unpruned(model, "model")
    path = _as_path(path)
    spec, state = _model_file(path)
    replay_history(model, spec, repr(str(path)))
    load_weights(model, state, path, "", hint=same_class_hint(model, spec))
    return model.eval()


def restore_checkpoint(module: nn.Module, path: str | os.PathLike, attr: str | None = None) -> nn.Module:
    """Load a Lightning checkpoint into ``module``, replaying the pruning its networks went through.

    One line: ``module = restore_checkpoint(LitClassifier(backbone=Backbone()), "last.ckpt")``.
    :class:`~lightning_spiral.PruningCallback` stores the pruned network's record in every
    checkpoint of its fit; the file is read with ``torch.load(weights_only=True)``, which a
    Lightning 2.6 checkpoint passes when its hyperparameters are plain values (as
    ``save_hyperparameters(ignore=["backbone"])`` leaves them); an object among them is refused.

    Args:
        module: a freshly constructed LightningModule of the checkpoint's class, its network unpruned.
        path: a ``.ckpt`` written during a fit with :class:`~lightning_spiral.PruningCallback`.
        attr: replay only the network at this attribute; ``None``: every network the checkpoint recorded.

    Returns:
        ``module`` itself, with the pruned shapes and the checkpoint's weights, in eval mode.

    Raises:
        ModelFormatError: the file is not a readable checkpoint, records no network ``attr``, or
            its weights do not fit ``module``.
        SpiralConfigError: ``module`` lacks a recorded network, or it was pruned already.

    Example:
        >>> import tempfile, lightning.pytorch as L, torch
        >>> from lightning_spiral.model_record import store_network_record
        >>> from lightning_spiral.pruning import prune
        >>> class LitRegressor(L.LightningModule):
        ...     def __init__(self, net: nn.Module) -> None:
        ...         super().__init__()
        ...         self.net = net
        >>> def make_net() -> nn.Module:
        ...     return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
        >>> module = LitRegressor(prune(make_net(), torch.randn(1, 8), amount=0.5))
        >>> checkpoint = {"state_dict": module.state_dict()}  # what a fit with PruningCallback writes:
        >>> store_network_record(checkpoint, module, module.net)  # ... its on_save_checkpoint adds this
        >>> path = tempfile.mkdtemp() + "/last.ckpt"
        >>> torch.save(checkpoint, path)
        >>> restore_checkpoint(LitRegressor(make_net()), path).net[0].out_features
        8
    """
    check_network("module", module)
    path = _as_path(path)
    _check_attr(attr)
    payload = read_file(path, CHECKPOINT_FILE)
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise ModelFormatError(f"{str(path)!r} is not a Lightning checkpoint (no 'state_dict'); found {describe(payload)}.")
    for name, record in _pruned_networks(payload, attr, path).items():
        network = _network_at(module, name)
        check_unpruned(network, f"module.{name}" if name else "module")
        replay_history(network, ModelSpec.from_dict(record), f"the checkpoint {str(path)!r}")
    load_weights(module, payload["state_dict"], path, "",
                 hint=f"Construct {type(module).__name__} (and its network) as the run that wrote the checkpoint did.")
    return module.eval()


def _pruned_networks(payload: dict[str, Any], attr: str | None, path: Path) -> dict[str, dict[str, Any]]:
    """The network records of a checkpoint to replay: all of them, or the one at ``attr``."""
    records = payload.get(PRUNED_NETWORKS_KEY) or {}
    if attr is None:
        return records
    if attr not in records:
        raise ModelFormatError(
            f"`attr`={attr!r} names no pruned network recorded in {str(path)!r}; it records {sorted(records)} "
            "(a checkpoint written during a fit with PruningCallback records the network it pruned)."
        )
    return {attr: records[attr]}


def _network_at(module: nn.Module, name: str) -> nn.Module:
    """``module``'s submodule at the attribute path ``name`` (``""``: the module itself)."""
    try:
        return module.get_submodule(name)
    except AttributeError as err:
        raise SpiralConfigError(
            f"`module` ({type(module).__name__}) has no network {name!r}, which the checkpoint records as pruned; "
            "construct the module the way the run that wrote the checkpoint did."
        ) from err


def load_teacher(path: str | os.PathLike, model: nn.Module | None = None, attr: str | None = None) -> nn.Module:
    """A trained network, in eval mode on the CPU, from any file :func:`carries_architecture` describes.

    Args:
        path: a :func:`save_model` file, a Lightning checkpoint (``.ckpt``) or a plain state dict of tensors.
        model: the architecture to load weights-only files into (its weights are replaced in place),
            or to :func:`restore` a saved network of your own class onto; ``None`` for files that
            carry their own (registry model files, SpiralModule checkpoints).
        attr: the attribute of the LightningModule that holds the network (``"net"`` for
            ``self.net``); default ``"student"``, where a SpiralModule keeps it. In a plain state
            dict, a key prefix to strip (default: none).

    Example:
        >>> import tempfile, torch
        >>> from lightning_spiral.models import build_model
        >>> net = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
        >>> path = tempfile.mkdtemp() + "/weights.pt"
        >>> torch.save(net.state_dict(), path)
        >>> fresh = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
        >>> all(torch.equal(a, b) for a, b in zip(load_teacher(path, fresh).parameters(), net.parameters()))
        True
    """
    path = _as_path(path)
    check_network("model", model, none_ok=True)
    _check_attr(attr)
    payload = read_file(path, TEACHER_FILE)
    if is_model_file(payload):
        if _is_registry_file(payload) and model is not None:
            raise SpiralConfigError(
                f"`teacher_checkpoint` {str(path)!r} is a lightning-spiral model file that carries its own architecture; "
                "pass `model`=None with it."
            )
        return load_model(path) if model is None else restore(model, path)
    state, spec, prefix = _weights_in(payload, path, attr)
    if model is None:
        if spec is None:
            raise SpiralConfigError(
                f"`teacher_checkpoint` {str(path)!r} holds weights only; pass `model` (in a Hydra config: the `model` "
                "node) with the architecture they belong to."
            )
        model = rebuild(ModelSpec.from_dict(spec))
    load_weights(model, state, path, prefix)
    return model.eval()


def carries_architecture(path: str | os.PathLike, attr: str | None = None) -> bool:
    """Whether ``path`` loads without an architecture: a registry model file or a SpiralModule checkpoint."""
    path = _as_path(path)
    _check_attr(attr)
    payload = read_file(path, TEACHER_FILE)
    if is_model_file(payload):
        return _is_registry_file(payload)
    return _weights_in(payload, path, attr)[1] is not None


def is_model_file(payload: Any) -> bool:
    """Whether a loaded file is in :func:`save_model`'s format (any readable version)."""
    return isinstance(payload, dict) and payload.get("format") in READABLE_FORMATS


def _is_registry_file(payload: dict[str, Any]) -> bool:
    return isinstance(payload.get("spec"), dict) and payload["spec"].get("name") is not None


def _model_file(path: Path) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """The record and the weights of the :func:`save_model` file at ``path``."""
    payload = read_file(path, MODEL_FILE)
    if not isinstance(payload, dict):
        raise ModelFormatError(f"{str(path)!r} holds {describe(payload)}, not a {MODEL_FILE}.")
    if not is_model_file(payload):
        raise ModelFormatError(f"{str(path)!r} has format {payload.get('format')!r}; expected one of {list(READABLE_FORMATS)}.")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ModelFormatError(f"{str(path)!r} is a corrupt {MODEL_FILE}: its 'state_dict' is not a dict of tensors.")
    return ModelSpec.from_dict(payload.get("spec")), state


def _weights_in(payload: Any, path: Path, attr: str | None) -> tuple[dict[str, torch.Tensor], dict | None, str]:
    """The state dict in a Lightning checkpoint or plain state dict, the stored spec (if any) and the key prefix."""
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):  # a Lightning checkpoint
        name = attr or SPIRAL_MODULE_ATTR
        state = payload["state_dict"]
        attributes = sorted({key.split(".", 1)[0] for key in state})
        if not any(key.startswith(f"{name}.") for key in state):
            raise ModelFormatError(
                f"`teacher_checkpoint_attr`={name!r} names no network in the Lightning checkpoint {str(path)!r}; "
                f"its module has the attributes {attributes}."
            )
        specs = payload.get(CHECKPOINT_KEY)
        return state, specs.get(name) if isinstance(specs, dict) else None, f"{name}."
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return payload, None, f"{attr}." if attr else ""
    raise ModelFormatError(
        f"{str(path)!r} is neither a lightning-spiral model file, a Lightning checkpoint (a dict with 'state_dict') "
        f"nor a state dict of tensors; found {describe(payload)}."
    )


def _as_path(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path``; anything but a str or ``os.PathLike`` is refused."""
    if not isinstance(path, (str, os.PathLike)):
        raise refuse("path", shown(path), "a file path (str or os.PathLike)")
    return Path(path)


def _check_attr(attr: str | None) -> None:
    """``attr`` names an attribute (``"net"``) or is ``None``."""
    if attr is not None and not isinstance(attr, str):
        raise refuse("attr", shown(attr), "None or the name of the attribute that holds the network (e.g. 'net')")


def rebuild(spec: ModelSpec) -> nn.Module:
    """Build ``spec``'s registry architecture and replay its pruning history (weights random)."""
    if spec.name is None or spec.kwargs is None:
        raise ModelFormatError(f"The record names no registry architecture (a network of {spec.network_class}): use `restore`.")
    kwargs = dict(spec.kwargs)
    if kwargs.get("weights") is not None:
        kwargs["weights"] = None  # the file holds the weights: never download pretrained ones to overwrite
    try:
        model = build_model(spec.name, input_shape=spec.input_shape, **kwargs)
    except SpiralError as err:
        raise ModelFormatError(f"The model file names an architecture that cannot be built: {err}") from err
    return replay_history(model, spec, f"the {spec.name!r} record")
