"""L1 sparsity on BatchNorm scales while training, so ``importance="bn_scale"`` finds clear losers.

Network Slimming (Liu et al. 2017, https://arxiv.org/abs/1708.06519) adds ``weight * sum |gamma|``
over every BatchNorm scale to the loss of the stage *before* pruning; channels whose gamma is
driven towards zero are then removed by the BN-scale criterion. The subgradient
``weight * sign(gamma)`` is added to each gamma's gradient after ``backward`` — the authors'
implementation — so the user's loss and ``training_step`` stay untouched.

Example:
    >>> import lightning.pytorch as L
    >>> callback = BNSparsityCallback(weight=1e-4)
    >>> callback.weight, callback.attr
    (0.0001, None)
    >>> trainer = L.Trainer(callbacks=[callback])  # doctest: +SKIP
"""

from __future__ import annotations

import lightning.pytorch as L
import torch
import torch.nn as nn

from lightning_spiral.checks import check_positive
from lightning_spiral.module_network import network_of


class BNSparsityCallback(L.Callback):
    """Add ``weight * sign(gamma)`` to the gradient of every BatchNorm scale of the trained network.

    Args:
        weight: the L1 coefficient (the paper uses 1e-4 to 1e-5), > 0.
        attr: attribute of the LightningModule holding the network (default: ``student`` when
            present, else the whole module). A frozen teacher has no gradients and is never touched.
    """

    def __init__(self, weight: float = 1e-4, attr: str | None = None) -> None:
        self.weight = check_positive("weight", weight, hint="It is the L1 coefficient on BatchNorm scales, e.g. 1e-4.")
        self.attr = attr

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        network = network_of(pl_module, self.attr)
        with torch.no_grad():
            for module in network.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None and module.weight.grad is not None:
                    module.weight.grad.add_(self.weight * torch.sign(module.weight))
