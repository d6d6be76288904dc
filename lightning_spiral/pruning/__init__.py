"""Structured pruning: importance criteria, the torch-pruning based core, transformer heads/MLP/depth, the Lightning callback."""

from lightning_spiral.pruning.bn_sparsity import BNSparsityCallback
from lightning_spiral.pruning.callback import PruningCallback
from lightning_spiral.pruning.coupling import CoupledPruningWarning
from lightning_spiral.pruning.importance import IMPORTANCE_NAMES, ImportanceName, make_importance
from lightning_spiral.pruning.masks import MaskPruningCallback
from lightning_spiral.pruning.schedule import SCHEDULE_NAMES, stage_macs_ratios
from lightning_spiral.pruning.structured import prune
from lightning_spiral.pruning.transformer import kept_blocks

__all__ = [
    "BNSparsityCallback",
    "CoupledPruningWarning",
    "IMPORTANCE_NAMES",
    "SCHEDULE_NAMES",
    "ImportanceName",
    "MaskPruningCallback",
    "PruningCallback",
    "kept_blocks",
    "make_importance",
    "prune",
    "stage_macs_ratios",
]
