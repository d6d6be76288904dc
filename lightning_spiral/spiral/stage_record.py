"""What a finished (or failed) stage leaves behind: its measured :class:`StageResult` and model file.

Example:
    >>> from lightning_spiral.spiral.stage_record import MODEL_FILE, stage_model_path
    >>> str(stage_model_path(2)), MODEL_FILE
    ('stage_2/model.pt', 'model.pt')
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn as nn
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.model_helpers import is_overridden
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.io import save_model
from lightning_spiral.measure import file_size, measure_model
from lightning_spiral.records import StageResult
from lightning_spiral.spiral.monitor import Monitor

MODEL_FILE = "model.pt"


def stage_model_path(stage: int) -> Path:
    """Where stage ``stage`` saves its model, relative to the run directory."""
    return Path(f"stage_{stage}") / MODEL_FILE


def is_global_zero() -> bool:
    """Whether this process is rank 0 (the one that measures and writes files)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def measure_stage(
    stage: int,
    trainer: L.Trainer,
    module: L.LightningModule,
    network: nn.Module,
    datamodule: L.LightningDataModule,
    output_dir: Path,
    *,
    example: torch.Tensor,
    monitor: Monitor,
    amount: float,
    wall_s: float,
    note: str = "",
    repeats: int,
    threads: int,
) -> StageResult:
    """Everything ``module`` logs in validation (and test, when the data has a test split), the
    network's size and speed; save the network to ``stage_<k>/model.pt``.

    The record says ``kept``; the floor check (:func:`~lightning_spiral.spiral.floor.judge_stage`) may
    roll it back afterwards.

    Under DDP every rank validates and tests (Lightning reduces the metrics); rank 0 alone times
    the network and writes the file, then broadcasts what it measured.
    """
    val = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    test = trainer.test(module, datamodule=datamodule, verbose=False)[0] if has_test_split(module, datamodule) else {}
    if monitor.key not in val:
        raise SpiralConfigError(f"`monitor.key`={monitor.key!r} was not logged in validation; logged: {sorted(val)}.")
    model_path = stage_model_path(stage)
    measured = None
    if is_global_zero():  # one process times and writes; under DDP others would share its cores
        measurement = measure_model(network, tuple(example.shape[1:]), repeats=repeats, threads=threads)
        save_model(network, output_dir / model_path)
        measured = (measurement, file_size(output_dir / model_path))
    measurement, size = trainer.strategy.broadcast(measured, src=0)
    return StageResult(
        stage=stage,
        top1=optional_float(test.get("test/top1")),
        val_top1=optional_float(val.get("val/top1")),
        top5=optional_float(test.get("test/top5")),
        val_score=float(val[monitor.key]),
        metrics={key: float(value) for key, value in {**val, **test}.items()},
        params=measurement.params,
        macs=measurement.macs,
        latency_ms_b1=measurement.latency_ms_b1,
        latency_ms_b64=measurement.latency_ms_b64,
        size_bytes=size,
        model_path=str(model_path),
        kept=True,
        amount=amount,
        wall_s=wall_s,
        note=note,
    )


def has_test_split(module: L.LightningModule, datamodule: L.LightningDataModule) -> bool:
    """Whether test figures can be reported: the module has a ``test_step`` and the data a test loader."""
    return is_overridden("test_step", module) and is_overridden("test_dataloader", datamodule, L.LightningDataModule)


def optional_float(value: float | torch.Tensor | None) -> float | None:
    return None if value is None else float(value)


def failed_stage(
    stage: int, network: nn.Module, example: torch.Tensor, *, amount: float | None, wall_s: float,
    error: Exception, repeats: int, threads: int,
) -> StageResult:
    """The record of a stage whose training failed: measured for size and speed, never kept or saved."""
    rank_zero_warn(f"[Spiral] stage {stage} failed and is rolled back; earlier stages are intact. Reason: {error}")
    measurement = measure_model(network, tuple(example.shape[1:]), repeats=repeats, threads=threads)
    return StageResult(
        stage=stage, top1=None, val_top1=None, val_score=None, params=measurement.params, macs=measurement.macs,
        latency_ms_b1=measurement.latency_ms_b1, latency_ms_b64=measurement.latency_ms_b64, size_bytes=0,
        model_path="", kept=False, amount=amount or 0.0, wall_s=wall_s,
        note=f"failed and rolled back: {error}",
    )
