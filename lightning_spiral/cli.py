"""The ``lightning-spiral`` command: compose ``conf/config.yaml`` with Hydra and run the spiral.

All logic lives in :func:`lightning_spiral.spiral.build_spiral` and :class:`Spiral`; this file only
connects Hydra's composed config and run directory to them, and turns our own errors (bad input,
a failed teacher stage) into one readable line and exit status 2. ``HYDRA_FULL_ERROR=1`` keeps the
full traceback for developers. It returns the run's :func:`~lightning_spiral.objective.sweep_objective`
(validation top-1 under the optional ``macs_budget``) for sweepers such as Optuna.

Example (shell):
    lightning-spiral                                  # digits, small CNN, default spiral
    lightning-spiral spiral.target_macs_ratio=0.2 spiral.teacher=previous
    lightning-spiral spiral.schedule=constant spiral.stage_epochs=5 pruning.amount=0.3
    lightning-spiral -m spiral.teacher=previous,original
    lightning-spiral experiment=cifar10_resnet56
    lightning-spiral resume=outputs/2026-11-25/10-00-00      # continue an interrupted run
    lightning-spiral hparams_search=optuna                   # Optuna search (extra: lightning-spiral[optuna])
"""

from __future__ import annotations

import os
import sys

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lightning_spiral.errors import SpiralError
from lightning_spiral.objective import check_macs_budget, sweep_objective
from lightning_spiral.spiral import build_spiral

EXIT_BAD_INPUT = 2


@hydra.main(version_base="1.3", config_path="pkg://lightning_spiral.conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one spiral compression job in Hydra's run (or sweep) directory, or resume one; return its objective."""
    resume = cfg.get("resume")
    output_dir = resume if resume else HydraConfig.get().runtime.output_dir
    try:
        macs_budget = check_macs_budget(cfg.get("macs_budget"))
        report = build_spiral(cfg, output_dir=output_dir, resume=bool(resume)).run()
        return sweep_objective(report, macs_budget)
    except SpiralError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.stderr.write(f"lightning-spiral: error: {err}\n")
        raise SystemExit(EXIT_BAD_INPUT) from None
    finally:
        release_process_group()


def release_process_group() -> None:
    """Destroy the DDP process group this command's Trainers created (``trainer=ddp_cpu``, ``trainer=gpu`` with devices > 1).

    Lightning leaves it alive after ``fit``; left to interpreter exit, gloo's threads can abort the
    process ("terminate called without an active exception", exit -6) after a finished run.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
