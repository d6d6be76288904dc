"""Which network of a LightningModule a callback acts on: ``pl_module.<attr>``, its ``student``, or itself.

One rule shared by :class:`~lightning_spiral.PruningCallback` and
:class:`~lightning_spiral.DistillationCallback`, so ``attr`` means the same thing for both.

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

import lightning.pytorch as L
import torch.nn as nn

from lightning_spiral.errors import SpiralConfigError


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
