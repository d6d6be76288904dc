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

import torch
import torch.nn as nn
import torch_pruning as tp

from lightning_spiral.atomic import atomic_torch_save
from lightning_spiral.errors import ModelFormatError, SpiralError
from lightning_spiral.models import build_model
from lightning_spiral.models.pruning_fixups import sync_after_pruning
from lightning_spiral.models.spec import ModelSpec, attach_spec, spec_of

MODEL_FORMAT = "lightning-spiral-model/1"


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
    if not path.is_file():
        raise ModelFormatError(f"`path` {str(path)!r} does not exist or is not a file.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ModelFormatError(
            f"{str(path)!r} is not a readable lightning-spiral model file ({type(err).__name__}: {err}). "
            "It may be truncated, corrupt, or contain pickled code, which is refused."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ModelFormatError(f"{str(path)!r} has format {found!r}; expected {MODEL_FORMAT!r}.")
    spec = ModelSpec.from_dict(payload["spec"])
    model = rebuild(spec)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ModelFormatError(f"The weights in {str(path)!r} do not fit the rebuilt architecture: {err}") from err
    return model.eval()


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
