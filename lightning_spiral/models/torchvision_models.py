"""Any torchvision classification model by name, as ``torchvision.<name>`` in the registry.

Models come from :func:`torchvision.models.get_model` with a fresh ``num_classes``-way head.
They expect 3-channel images. Pretrained weights are opt-in through ``weights`` (``"DEFAULT"``
or a member name such as ``"IMAGENET1K_V1"``); they are downloaded by torchvision, so they need a
network (offline, :class:`~lightning_spiral.errors.WeightsDownloadError` names the file to put
in torch.hub's cache instead), and ImageNet weights only fit a 1000-class head (fine-tune a new head yourself for other
class counts). Inputs smaller than the model was designed for (e.g. 32×32 for ImageNet models)
usually run but downsample aggressively.

Example:
    >>> import torch
    >>> net = build_torchvision_model("resnet18", num_classes=10)
    >>> net(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from pathlib import Path

import torch.hub
import torch.nn as nn
import torchvision

from lightning_spiral.checks import check_int, refuse
from lightning_spiral.errors import WeightsDownloadError

TORCHVISION_PREFIX = "torchvision."


def torchvision_model_names() -> list[str]:
    """Names of torchvision's classification models (detection, video, ... models excluded)."""
    return torchvision.models.list_models(module=torchvision.models)


def build_torchvision_model(name: str, num_classes: int, in_channels: int = 3, weights: str | None = None) -> nn.Module:
    """Build torchvision's classification model ``name`` with a ``num_classes``-way head.

    Args:
        name: a name from :func:`torchvision_model_names`, without the ``torchvision.`` prefix.
        num_classes: number of output logits; must match the weights' classes when ``weights`` is set.
        in_channels: must be 3, the only input torchvision's models take.
        weights: ``None`` for random initialisation, else ``"DEFAULT"`` or a member name of the
            model's weights enum (``"IMAGENET1K_V1"``, ...); downloaded by torchvision on first use.

    Example:
        >>> build_torchvision_model("mobilenet_v3_small", num_classes=5).classifier[-1].out_features
        5
    """
    if name not in torchvision_model_names():
        raise refuse("name", f"{TORCHVISION_PREFIX}{name}", "'torchvision.<name>' with <name> a torchvision classification "
                     "model (see torchvision.models.list_models(module=torchvision.models))")
    check_int("num_classes", num_classes, 1, hint="It is the number of output logits.")
    if in_channels != 3:
        raise refuse("input_shape[0]", in_channels, "3 for torchvision models", "Use a built-in model for other channel counts.")
    if weights is None:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    _check_weights(name, weights, num_classes)
    try:
        return torchvision.models.get_model(name, weights=weights, num_classes=num_classes)
    except OSError as err:  # urllib's URLError, refused connections, DNS failures
        url = torchvision.models.get_model_weights(name)[weights].url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        raise WeightsDownloadError(
            f"Downloading `weights`={weights!r} of 'torchvision.{name}' from {url} failed ({type(err).__name__}: {err}). "
            f"Without a network, copy that file to '{cached}' (torch.hub's cache; set TORCH_HOME to move it), "
            "or build with weights=None and give trained weights as `teacher_checkpoint`."
        ) from err


def _check_weights(name: str, weights: str, num_classes: int) -> None:
    """Raise unless ``weights`` names weights of model ``name`` that have ``num_classes`` classes."""
    weights_enum = torchvision.models.get_model_weights(name)
    allowed = list(weights_enum.__members__)
    if weights not in allowed:
        raise refuse("weights", weights, f"None or one of {allowed} (the weights of 'torchvision.{name}')")
    categories = len(weights_enum[weights].meta["categories"])
    if num_classes != categories:
        raise refuse("num_classes", num_classes, f"{categories} with `weights`={weights!r} of 'torchvision.{name}'",
                     "Build with weights=None for another class count.")
