"""Unstructured magnitude masks, pruned gradually within a fit — Lightning's ``ModelPruning`` underneath.

Masks zero individual weights (``torch.nn.utils.prune``); tensors keep their shape, so dense
kernels run as fast as before: use structured :class:`PruningCallback` for speed, masks for
sparsity-aware hardware or when channel removal costs too much accuracy. This callback only adds
what a spiral stage needs on top of Lightning's own ``ModelPruning``:

- a cumulative sparsity schedule: cubic (Zhu & Gupta 2017, https://arxiv.org/abs/1710.01878)
  from 0 to ``amount`` over the first ``pruning_epochs`` epochs, masks made permanent at the end;
- only the student (or ``attr``) is masked, never the teacher;
- per-layer and overall sparsity in :attr:`summary` after fit.

Checkpoints are saved with the masks applied (``ModelPruning``'s ``make_pruning_permanent``).

Example:
    >>> callback = MaskPruningCallback(amount=0.8, pruning_epochs=4)
    >>> [round(callback.sparsity_after_epoch(e), 3) for e in range(4)]
    [0.463, 0.7, 0.788, 0.8]
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch.nn as nn
from lightning.pytorch.callbacks import ModelPruning
from lightning.pytorch.utilities import rank_zero_info

from lightning_spiral.checks import check_bool, check_choice, check_int, check_interval
from lightning_spiral.measure import layer_sparsity, sparsity


class MaskPruningCallback(ModelPruning):
    """Gradual L1 unstructured masks on the student, reaching ``amount`` sparsity within one fit.

    Args:
        amount: final fraction of zero weights among the student's Conv/Linear weights, in (0, 1).
        global_pruning: rank weights across all layers (``True``) or prune each layer alike.
        pruning_epochs: masks grow at the end of epochs ``0 .. pruning_epochs - 1``; ``None`` uses
            the first half of ``max_epochs`` (the second half recovers accuracy).
        attr: attribute of the LightningModule holding the network to mask (default: ``student``
            when present, else the whole module).
        verbose: 0 silent, 1 overall sparsity after each pruning, 2 also per layer.
    """

    def __init__(
        self,
        amount: float,
        global_pruning: bool = True,
        pruning_epochs: int | None = None,
        attr: str | None = None,
        verbose: int = 1,
    ) -> None:
        self.final_amount = check_interval("amount", amount, "(0, 1)",
                                           hint="It is the final sparsity: 0.8 zeroes 80% of the weights.")
        global_pruning = check_bool("global_pruning", global_pruning)
        self.pruning_epochs = check_int("pruning_epochs", pruning_epochs, 1, none_ok=True,
                                        hint="None ramps the masks up over the first half of `max_epochs`.")
        verbose = check_choice("verbose", verbose, (0, 1, 2), hint="0: silent, 1: overall sparsity, 2: also per layer.")
        self.attr = attr
        self.summary: dict[str, Any] = {}
        self._network: nn.Module | None = None
        super().__init__(
            "l1_unstructured",
            use_global_unstructured=global_pruning,
            amount=self.amount_at_epoch,
            make_pruning_permanent=True,
            use_lottery_ticket_hypothesis=False,
            verbose=verbose,
        )

    def sparsity_after_epoch(self, epoch: int) -> float:
        """Cumulative target sparsity once epoch ``epoch`` ends (cubic, 0 -> ``amount``)."""
        epochs = self.pruning_epochs or 1
        progress = min((epoch + 1) / epochs, 1.0)
        return self.final_amount * (1 - (1 - progress) ** 3)

    def amount_at_epoch(self, epoch: int) -> float:
        """Fraction of the *still unmasked* weights to mask at the end of ``epoch`` (0 after the ramp)."""
        if self.pruning_epochs is not None and epoch >= self.pruning_epochs:
            return 0.0
        before = self.sparsity_after_epoch(epoch - 1) if epoch > 0 else 0.0
        return 1 - (1 - self.sparsity_after_epoch(epoch)) / (1 - before)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.pruning_epochs is None:
            self.pruning_epochs = max(1, (trainer.max_epochs or 2) // 2)
        attr = self.attr if self.attr is not None else ("student" if hasattr(pl_module, "student") else None)
        self._network = pl_module if attr is None else getattr(pl_module, attr)
        super().setup(trainer, pl_module, stage)

    def filter_parameters_to_prune(self, parameters_to_prune: Any = ()) -> Any:
        """Mask only weights of the pruned network (never the frozen teacher)."""
        inside = {id(m) for m in self._network.modules()}
        return [(module, name) for module, name in parameters_to_prune if id(module) in inside]

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)  # masks made permanent: plain tensors with zeros
        self.summary = {"sparsity": sparsity(self._network), "layers": layer_sparsity(self._network)}
        if self._verbose:
            rank_zero_info(f"[MaskPruningCallback] final sparsity {self.summary['sparsity']:.1%} of Conv/Linear weights")
