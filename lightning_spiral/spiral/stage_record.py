"""What a finished (or failed) stage leaves behind: its measured :class:`StageResult` and model file.

Example:
    >>> from lightning_spiral.spiral.stage_record import MODEL_FILE, stage_model_path
    >>> str(stage_model_path(2)), MODEL_FILE
    ('stage_2/model.pt', 'model.pt')
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import torch.nn as nn
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lightning_spiral.io import save_model
from lightning_spiral.measure import file_size, measure_model
from lightning_spiral.module import SpiralModule
from lightning_spiral.report import StageResult

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
    module: SpiralModule,
    datamodule: L.LightningDataModule,
    output_dir: Path,
    *,
    amount: float,
    wall_s: float,
    note: str = "",
    repeats: int,
    threads: int,
) -> StageResult:
    """Validation and test top-1 of the student, its size and speed; save it to ``stage_<k>/model.pt``.

    The record says ``kept``; the floor check (:func:`~lightning_spiral.spiral.floor.judge_stage`) may
    roll it back afterwards.

    Under DDP every rank validates and tests (Lightning reduces the metrics); rank 0 alone times
    the model and writes the file, then broadcasts what it measured.
    """
    val = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    model_path = stage_model_path(stage)
    measured = None
    if is_global_zero():  # one process times and writes; under DDP others would share its cores
        measurement = measure_model(module.student, datamodule.input_shape, repeats=repeats, threads=threads)
        save_model(module.student, output_dir / model_path)
        measured = (measurement, file_size(output_dir / model_path))
    measurement, size = trainer.strategy.broadcast(measured, src=0)
    return StageResult(
        stage=stage,
        top1=float(test["test/top1"]),
        val_top1=float(val["val/top1"]),
        top5=float(test["test/top5"]) if "test/top5" in test else None,
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


def failed_stage(
    stage: int, student: nn.Module, input_shape: tuple[int, ...], *, amount: float | None, wall_s: float,
    error: Exception, repeats: int, threads: int,
) -> StageResult:
    """The record of a stage whose training failed: measured for size and speed, never kept or saved."""
    rank_zero_warn(f"[Spiral] stage {stage} failed and is rolled back; earlier stages are intact. Reason: {error}")
    measurement = measure_model(student, input_shape, repeats=repeats, threads=threads)
    return StageResult(
        stage=stage, top1=0.0, val_top1=0.0, params=measurement.params, macs=measurement.macs,
        latency_ms_b1=measurement.latency_ms_b1, latency_ms_b64=measurement.latency_ms_b64, size_bytes=0,
        model_path="", kept=False, amount=amount or 0.0, wall_s=wall_s,
        note=f"failed and rolled back: {error}",
    )
