"""Which network of a LightningModule a callback acts on: ``pl_module.<attr>``, its ``student``, or itself.

One rule shared by :class:`~lightning_spiral.PruningCallback` and
:class:`~lightning_spiral.DistillationCallback`, so ``attr`` means the same thing for both; and
:func:`check_network`, the one check that an argument is a network (``nn.Module``).

Example:
    >>> import lightning.pytorch as L
    >>> from torch import nn
    >>> class LitModel(L.LightningModule):
    ...     def __init__(self) -> None:
    ...         super().__init__()
    ...         self.net = nn.Linear(4, 2)
    >>> model = LitModel()
    >>> network_of(model, "net") is model.net, network_of(model, None) is model
    (True, True)
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch.nn as nn

from lightning_spiral.checks import refuse
from lightning_spiral.errors import SpiralConfigError

#: Longest ``repr`` of a refused value shown in a message; a longer one is shown by its type.
_SHOWN_CHARS = 120


class _Described:
    """Stands in for a value in an error message when its ``repr`` is too long or spans lines: "a Tensor"."""

    def __init__(self, value: Any) -> None:
        self.text = f"a {type(value).__name__}"

    def __repr__(self) -> str:
        return self.text


def shown(value: Any) -> Any:
    """``value`` itself if its ``repr`` fits on one short line, else its type, for :func:`~lightning_spiral.checks.refuse`.

    Example:
        >>> shown("abc"), shown("x" * 200)
        ('abc', a str)
    """
    text = repr(value)
    return value if len(text) <= _SHOWN_CHARS and "\n" not in text else _Described(value)


def check_network(name: str, value: Any, *, none_ok: bool = False) -> Any:
    """An ``nn.Module`` (or ``None`` when ``none_ok``); raises naming ``name``.

    Example:
        >>> check_network("model", "resnet20")
        Traceback (most recent call last):
            ...
        lightning_spiral.errors.SpiralConfigError: `model` must be an nn.Module, got 'resnet20'.
    """
    if (value is None and none_ok) or isinstance(value, nn.Module):
        return value
    raise refuse(name, shown(value), "None or an nn.Module" if none_ok else "an nn.Module",
                 "Pass an instance, not its class." if isinstance(value, type) else "")


def network_of(pl_module: L.LightningModule, attr: str | None) -> nn.Module:
    """``pl_module.<attr>``; for ``attr=None`` its ``student`` when it has one, else ``pl_module`` itself."""
    attr = attr if attr is not None else ("student" if hasattr(pl_module, "student") else None)
    if attr is None:
        return pl_module
    network = getattr(pl_module, attr, None)
    if not isinstance(network, nn.Module):
        raise SpiralConfigError(
            f"`attr` is {attr!r}, but {type(pl_module).__name__}.{attr} is not an nn.Module "
            f"(got {type(network).__name__}). Pass the attribute that holds the network."
        )
    return network
