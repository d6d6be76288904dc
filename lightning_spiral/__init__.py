"""lightning-spiral: spiral compression (structured pruning + knowledge distillation) for PyTorch Lightning.

Public API:
    - :class:`SpiralModule` — frozen teacher + trainable student LightningModule.
    - :class:`PruningCallback` — structured channel pruning in ``setup`` (channels physically removed).
    - :class:`DistillationCallback` — distillation added to your own LightningModule by a callback.
    - :class:`KDLoss`, :class:`LogitMSELoss`, :class:`DistillationLoss` — distillation losses.
    - :class:`Spiral` — the multi-stage driver, on your LightningModule or the built-in one; :class:`Monitor`
      — the validation metric that judges a stage; :func:`build_spiral` builds it from a Hydra config.
    - :func:`prune`, :func:`build_model`, :func:`register_model`, :func:`save_model`, :func:`load_model`;
      :func:`restore` / :func:`restore_checkpoint` rebuild a saved network / checkpoint on your own class.
"""

from lightning_spiral.distill import DistillationCallback, DistillationLoss, KDLoss, LogitMSELoss
from lightning_spiral.errors import SpiralConfigError, SpiralError
from lightning_spiral.io import load_model, restore, restore_checkpoint, save_model
from lightning_spiral.models import build_model, register_model
from lightning_spiral.module import SpiralModule
from lightning_spiral.portable import export_program
from lightning_spiral.pruning import PruningCallback, prune
from lightning_spiral.spiral import Spiral, build_spiral
from lightning_spiral.spiral.monitor import Monitor

__version__ = "0.1.0"

__all__ = [
    "DistillationCallback",
    "DistillationLoss",
    "KDLoss",
    "LogitMSELoss",
    "Monitor",
    "PruningCallback",
    "Spiral",
    "SpiralConfigError",
    "SpiralError",
    "SpiralModule",
    "build_model",
    "build_spiral",
    "export_program",
    "load_model",
    "prune",
    "register_model",
    "restore",
    "restore_checkpoint",
    "save_model",
]
