"""Save and load (pruned) models without pickling code.

A model file holds plain data only, so ``torch.load(..., weights_only=True)`` reads it and a file
from a colleague cannot run code on your machine:

- ``format``: the file format tag (``"lightning-spiral-model/1"``);
- ``spec``: the :class:`~lightning_spiral.models.spec.ModelSpec` — registry name and build
  arguments, input shape and torch-pruning's pruning history;
- ``state_dict``: the weights, as CPU tensors.

Loading rebuilds the architecture from the registry (never from an import path stored in the
file), replays the pruning history through torch-pruning's dependency graph so the shapes match,
then loads the weights. Files are written atomically.

:func:`load_teacher` also takes a trained network from files other tools write: a Lightning
checkpoint (``.ckpt``) of a :class:`~lightning_spiral.SpiralModule` (architecture from the specs it
stores) or of a user's LightningModule whose network sits under an attribute (``attr="net"``), or
a plain state dict (``torch.save(net.state_dict(), "net.pt")``). The last two hold weights only,
so the caller passes the architecture to load them into.

Example:
    >>> import tempfile, torch
    >>> from lightning_spiral.models import build_model
    >>> from lightning_spiral.pruning import prune
    >>> net = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    >>> _ = prune(net, torch.randn(1, 3, 32, 32), amount=0.5)
    >>> path = tempfile.mkdtemp() + "/model.pt"
    >>> save_model(net, path)
    >>> load_model(path).stem[0].out_channels
    8
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch_pruning as tp

from lightning_spiral.atomic import atomic_torch_save
from lightning_spiral.errors import ModelFormatError, SpiralConfigError, SpiralError
from lightning_spiral.models import build_model
from lightning_spiral.models.pruning_fixups import sync_after_pruning
from lightning_spiral.models.spec import ModelSpec, attach_spec, spec_of

MODEL_FORMAT = "lightning-spiral-model/1"
#: Key of the architecture specs in a Lightning checkpoint of a SpiralModule.
CHECKPOINT_KEY = "lightning_spiral_specs"
#: Where a SpiralModule keeps the network it trains (stage 0 trains the teacher as its student).
SPIRAL_MODULE_ATTR = "student"


def save_model(model: nn.Module, path: str | os.PathLike) -> None:
    """Write ``model`` (architecture as data + weights) to ``path`` atomically.

    The model must carry a :class:`ModelSpec`, which :func:`lightning_spiral.models.build_model`
    attaches and :func:`lightning_spiral.pruning.prune` keeps up to date.
    """
    spec = spec_of(model)
    if spec is None:
        raise ModelFormatError(
            f"Cannot save {type(model).__name__}: it carries no ModelSpec, so it could not be rebuilt safely. "
            "Build it with `lightning_spiral.models.build_model(...)`."
        )
    state_dict = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    atomic_torch_save({"format": MODEL_FORMAT, "spec": spec.to_dict(), "state_dict": state_dict}, path)


def load_model(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model saved at ``path`` by :func:`save_model`, in eval mode, on the CPU."""
    path = Path(path)
    payload = _read_payload(path)
    if not is_model_file(payload):
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ModelFormatError(f"{str(path)!r} has format {found!r}; expected {MODEL_FORMAT!r}.")
    model = rebuild(ModelSpec.from_dict(payload["spec"]))
    _load_weights(model, payload["state_dict"], path, "")
    return model.eval()


def load_teacher(path: str | os.PathLike, model: nn.Module | None = None, attr: str | None = None) -> nn.Module:
    """A trained network, in eval mode on the CPU, from any file :func:`carries_architecture` describes.

    Args:
        path: a :func:`save_model` file, a Lightning checkpoint (``.ckpt``) or a plain state dict of tensors.
        model: the architecture to load weights-only files into (its weights are replaced in place);
            ``None`` for files that carry their own (model files, SpiralModule checkpoints).
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
    path = Path(path)
    payload = _read_payload(path)
    if is_model_file(payload):
        if model is not None:
            raise SpiralConfigError(
                f"`teacher_checkpoint` {str(path)!r} is a lightning-spiral model file that carries its own architecture; "
                "pass `model`=None with it."
            )
        return load_model(path)
    state, spec, prefix = _weights_in(payload, path, attr)
    if model is None:
        if spec is None:
            raise SpiralConfigError(
                f"`teacher_checkpoint` {str(path)!r} holds weights only; pass `model` (in a Hydra config: the `model` "
                "node) with the architecture they belong to."
            )
        model = rebuild(ModelSpec.from_dict(spec))
    _load_weights(model, state, path, prefix)
    return model.eval()


def carries_architecture(path: str | os.PathLike, attr: str | None = None) -> bool:
    """Whether ``path`` can be loaded without an architecture: a model file or a SpiralModule checkpoint."""
    path = Path(path)
    payload = _read_payload(path)
    return is_model_file(payload) or _weights_in(payload, path, attr)[1] is not None


def is_model_file(payload: Any) -> bool:
    """Whether a loaded file is in :func:`save_model`'s format."""
    return isinstance(payload, dict) and payload.get("format") == MODEL_FORMAT


def _read_payload(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers, never code."""
    if not path.is_file():
        raise ModelFormatError(f"`path` {str(path)!r} does not exist or is not a file.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ModelFormatError(
            f"{str(path)!r} is not a readable lightning-spiral model file ({type(err).__name__}: {err}). "
            "It may be truncated, corrupt, or contain pickled code, which is refused. For a Lightning checkpoint "
            "with pickled hyperparameters, save its weights alone: "
            "torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.pt')."
        ) from err


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
        spec = (payload.get(CHECKPOINT_KEY) or {}).get(name)
        return state, spec, f"{name}."
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return payload, None, f"{attr}." if attr else ""
    raise ModelFormatError(
        f"{str(path)!r} is neither a lightning-spiral model file, a Lightning checkpoint (a dict with 'state_dict') "
        f"nor a state dict of tensors; found {_describe(payload)}."
    )


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path, prefix: str) -> None:
    """Load the ``prefix``-ed entries of ``state`` into ``model``; every key and shape must match."""
    weights = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
    expected = {key: value.shape for key, value in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong_shape = [f"{k}: file {tuple(weights[k].shape)}, model {tuple(expected[k])}"
                   for k in sorted(set(expected) & set(weights)) if weights[k].shape != expected[k]]  # fmt: skip
    if missing or unexpected or wrong_shape:
        raise ModelFormatError(
            f"The weights in {str(path)!r}{f' under {prefix!r}' if prefix else ''} do not fit the "
            f"{type(model).__name__} they are loaded into: missing {_first(missing)}, unexpected {_first(unexpected)}, "
            f"other shapes {_first(wrong_shape)}. Check the `model` config and `teacher_checkpoint_attr`."
        )
    model.load_state_dict(weights)


def _first(items: list[str], count: int = 3) -> str:
    """Up to ``count`` items and how many more, for error messages."""
    more = f" and {len(items) - count} more" if len(items) > count else ""
    return f"{items[:count]}{more}"


def _describe(payload: Any) -> str:
    if isinstance(payload, dict):
        return f"a dict with the keys {sorted(map(str, payload))[:8]}"
    return f"a {type(payload).__name__}"


def rebuild(spec: ModelSpec) -> nn.Module:
    """Build ``spec``'s architecture from the registry and replay its pruning history (weights random)."""
    kwargs = dict(spec.kwargs)
    if kwargs.get("weights") is not None:
        kwargs["weights"] = None  # the file holds the weights: never download pretrained ones to overwrite
    try:
        model = build_model(spec.name, input_shape=spec.input_shape, **kwargs)
    except SpiralError as err:
        raise ModelFormatError(f"The model file names an architecture that cannot be built: {err}") from err
    if spec.pruning_history:
        model.eval()
        with torch.enable_grad():  # the dependency graph is traced through autograd
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, *spec.input_shape))
            graph.load_pruning_history([list(step) for step in spec.pruning_history])
        sync_after_pruning(model)
    return attach_spec(model, ModelSpec.from_dict(spec.to_dict()))
