"""A gentler learning rate for a schedule's waypoint stages (``Spiral(waypoint_lr_scale=...)``).

A MACs schedule's stages before the last are *waypoints*, often a single epoch. At the full stage
learning rate such an epoch knocks a freshly pruned network far below its teacher (the last stage
has to repair it); scaling the waypoints' learning rate down keeps them closer. The last stage
trains at the full rate, its schedule restarted — the learning-rate rewinding of Renda et al.
(2020). :class:`LearningRateScale` multiplies whatever optimizer the module configured — the
built-in :class:`~lightning_spiral.SpiralModule`'s or your own ``configure_optimizers`` — and
the base rates of its schedulers, so a cosine schedule anneals from the scaled rate.

Example:
    >>> import lightning.pytorch as L, torch
    >>> from lightning_spiral import SpiralModule
    >>> from lightning_spiral.data import DigitsDataModule
    >>> from lightning_spiral.models import build_model
    >>> module = SpiralModule(build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)), num_classes=10)
    >>> scale = LearningRateScale(0.1)
    >>> trainer = L.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
    ...                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    ...                     callbacks=[scale])
    >>> trainer.fit(module, datamodule=DigitsDataModule(batch_size=32))
    >>> round(trainer.optimizers[0].param_groups[0]["lr"], 6)  # SpiralModule's default SGD lr 0.05, scaled
    0.005
"""

from __future__ import annotations

import lightning.pytorch as L

from lightning_spiral.checks import check_positive


class LearningRateScale(L.Callback):
    """Multiply every optimizer's learning rates (and its schedulers' base rates) by ``scale`` when training starts."""

    def __init__(self, scale: float) -> None:
        self.scale = check_positive("waypoint_lr_scale", scale)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= self.scale
                if "initial_lr" in group:
                    group["initial_lr"] *= self.scale
        for config in trainer.lr_scheduler_configs:
            config.scheduler.base_lrs = [rate * self.scale for rate in config.scheduler.base_lrs]


__all__ = ["LearningRateScale"]
