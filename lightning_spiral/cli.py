"""The ``lightning-spiral`` command: compose ``conf/config.yaml`` with Hydra and run the spiral.

All logic lives in :func:`lightning_spiral.spiral.build_spiral` and :class:`Spiral`; this file
connects Hydra's composed config and run directory to them and keeps the command's contract:

- **exit 2**, one line ``lightning-spiral: error: ...``, for every error before training: ours,
  Hydra's composition errors (an unknown key, a config option that does not exist), a target that
  refuses its arguments, I/O errors. Nothing is written into an existing run: Hydra's ``.hydra/``
  record and the job log ``cli.log`` are written only once the run is accepted (a resumed run
  keeps the record it started with).
- **exit 1**, one line, for an error during training; its traceback goes to ``cli.log``.
- **exit 143 / 130** on SIGTERM / SIGINT (what SLURM, Kubernetes and Ctrl+C send): the stage in
  progress is left unfinished, so ``resume=<run dir>`` redoes it.
- ``HYDRA_FULL_ERROR=1`` keeps every traceback, for developers.

It returns the run's :func:`~lightning_spiral.objective.sweep_objective` (validation top-1 under the
optional ``macs_budget``) for sweepers such as Optuna.

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
from pathlib import Path
from typing import NoReturn

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lightning_spiral.atomic import atomic_write_text
from lightning_spiral.cli_errors import one_line
from lightning_spiral.cli_runtime import RunInterrupted, detach_file_logs, interruptible, log_traceback
from lightning_spiral.console import setup_console
from lightning_spiral.objective import check_macs_budget, sweep_objective
from lightning_spiral.spiral import build_spiral
from lightning_spiral.spiral.stage_record import is_global_zero

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
FULL_ERROR = "LIGHTNING_SPIRAL_FULL_ERROR"  # the user's HYDRA_FULL_ERROR, kept while Hydra's is forced on


def main() -> None:
    """The console entry point: run :func:`run_job` under Hydra, reporting composition errors in one line.

    ``HYDRA_FULL_ERROR`` is set for Hydra itself so that it raises its composition errors here
    instead of printing them over several lines; the user's own choice is kept in ``FULL_ERROR``.
    Known third-party deprecation warnings are filtered first (:func:`~lightning_spiral.console.setup_console`).
    """
    setup_console()
    os.environ.setdefault(FULL_ERROR, os.environ.get("HYDRA_FULL_ERROR", "0"))
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        run_job()
    except (HydraException, OmegaConfBaseException, OSError) as err:  # composing the config or making its run dir failed
        fail(err, EXIT_BAD_INPUT)


@hydra.main(version_base="1.3", config_path="pkg://lightning_spiral.conf", config_name="config")
def run_job(cfg: DictConfig) -> float:
    """Run one spiral compression job in Hydra's run (or sweep) directory, or resume one; return its objective."""
    resume = cfg.get("resume")
    output_dir = Path(resume) if resume else Path(HydraConfig.get().runtime.output_dir)
    try:
        with interruptible():
            attach_file_logs = detach_file_logs()
            try:
                macs_budget = check_macs_budget(cfg.get("macs_budget"))
                spiral = build_spiral(cfg, output_dir=output_dir, resume=bool(resume))
            except Exception as err:  # noqa: BLE001 - the contract: every error before training is one line, exit 2
                fail(err, EXIT_BAD_INPUT)
            attach_file_logs()
            if not resume and is_global_zero():  # DDP ranks > 0 re-run this command in the same folder
                write_job_record(output_dir, cfg)
            try:
                report = spiral.run()
            except Exception as err:  # noqa: BLE001 - during training: one line, exit 1, traceback in cli.log
                log_traceback(err)
                fail(err, EXIT_FAILED)
        return sweep_objective(report, macs_budget)
    except RunInterrupted as interrupted:
        sys.stderr.write(f"lightning-spiral: {interrupted}; continue with `lightning-spiral resume={output_dir}`\n")
        raise SystemExit(interrupted.exit_code) from None
    finally:
        release_process_group()


def fail(err: BaseException, code: int) -> NoReturn:
    """Print ``err`` as one line and exit with ``code`` (``HYDRA_FULL_ERROR=1``: re-raise it, traceback and all)."""
    if os.environ.get(FULL_ERROR) == "1":
        raise err
    sys.stderr.write(f"lightning-spiral: error: {one_line(err)}\n")
    raise SystemExit(code) from None


def write_job_record(output_dir: Path, cfg: DictConfig) -> None:
    """Hydra's ``.hydra/`` record (config, hydra config, overrides), written once the run is accepted.

    The config sets ``hydra.output_subdir: null`` so that Hydra does not write it before the job
    runs, where a refused rerun would overwrite an existing run's record.
    """
    hydra_cfg = HydraConfig.get()
    folder = output_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    atomic_write_text(folder / "hydra.yaml", OmegaConf.to_yaml({"hydra": hydra_cfg}))
    atomic_write_text(folder / "overrides.yaml", OmegaConf.to_yaml(list(hydra_cfg.overrides.task)))


def release_process_group() -> None:
    """Destroy the DDP process group this command's Trainers created (``trainer=ddp_cpu``, ``trainer=gpu`` with devices > 1).

    Lightning leaves it alive after ``fit``; left to interpreter exit, gloo's threads can abort the
    process ("terminate called without an active exception", exit -6) after a finished run.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
