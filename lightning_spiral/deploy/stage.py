"""The spiral's last stage: quantize the final kept model, write it to ``<run_dir>/quantized/``, measure it.

Called by the driver after the pruning stages with the final fp32 model and the network the next
stage would distill from, before the side-by-side timing, which times the written artifact in
ONNX Runtime beside the teacher and the kept stages
(:func:`~lightning_spiral.spiral.final_timing.time_side_by_side`). The steps:

1. export the fp32 model to ONNX (a scratch file) and measure its validation top-1 in ONNX Runtime;
2. ``fp16``: store it in half precision. ``int8_ptq``: static INT8 with calibration batches from
   the training or validation split. ``int8_qat``: the same, and when that loses more than
   ``max_top1_drop`` of validation top-1, a short Lightning fit of a fake-quantized copy
   (:mod:`lightning_spiral.deploy.qat`) distilling from the teacher with the spiral's loss, then
   static INT8 of the fine-tuned weights — same runtime, same file format;
3. write ``quantized/model.onnx`` atomically; measure test top-1 and size in ONNX Runtime.

Decisions use the validation split; the test split is measured for the report only. Under DDP every
rank takes part in the fine-tuning fit and global rank 0 alone exports, measures and writes.

Example:
    >>> result = run_quantize_stage(QuantizeSettings(kind="int8_ptq"), final_model, teacher,  # doctest: +SKIP
    ...     datamodule=data, output_dir="runs/digits", loss=KDLoss(), make_trainer=make_trainer)
"""

from __future__ import annotations

import functools
import itertools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn as nn
from lightning.pytorch.utilities import rank_zero_info

from lightning_spiral.checks import check_bool, refuse
from lightning_spiral.console import ONNX_LOGGERS, quiet_loggers
from lightning_spiral.deploy.export import export_onnx
from lightning_spiral.deploy.qat import add_fake_quant, remove_fake_quant
from lightning_spiral.deploy.quantize import convert_fp16, quantize_int8
from lightning_spiral.records import QuantizedResult
from lightning_spiral.deploy.runtime import onnx_session, onnx_top1, runtime_name
from lightning_spiral.deploy.settings import QuantizeSettings
from lightning_spiral.distill import DistillationLoss
from lightning_spiral.measure import check_threads, file_size
from lightning_spiral.module import SpiralModule
from lightning_spiral.module_network import check_network, shown

QUANTIZED_DIR = "quantized"
QUANTIZED_MODEL = "model.onnx"


@quiet_loggers(*ONNX_LOGGERS)  # onnxscript and onnx_ir log every optimisation pass at INFO
def run_quantize_stage(
    settings: QuantizeSettings,
    model: nn.Module,
    teacher: nn.Module,
    *,
    datamodule: L.LightningDataModule,
    output_dir: str | Path,
    loss: DistillationLoss | None,
    make_trainer: Callable[[int], L.Trainer],
    is_global_zero: bool = True,
    threads: int = 2,
) -> QuantizedResult | None:
    """Quantize ``model`` as ``settings`` say; return its record (``None`` on ranks other than 0).

    Args:
        settings: the ``quantize`` config; ``kind`` must not be ``"none"``.
        model: the spiral's final kept fp32 model (left unchanged).
        teacher: the network fine-tuning distills from (``int8_qat`` only).
        datamodule: the spiral's datamodule (calibration, validation and test batches).
        output_dir: the run directory; the model goes to ``quantized/model.onnx`` inside it.
        loss: the spiral's distillation loss; ``None`` fine-tunes on labels alone.
        make_trainer: returns a fresh Trainer that runs the given number of epochs.
        is_global_zero: whether this process exports, measures and writes.
        threads: CPU threads of the runtime while measuring accuracy.
    """
    _check_stage_arguments(settings, model, teacher, make_trainer)
    check_bool("is_global_zero", is_global_zero)
    check_threads(threads)
    input_shape = tuple(datamodule.input_shape)
    for stage in ("fit", "test"):
        datamodule.setup(stage)
    relative_path = Path(QUANTIZED_DIR) / QUANTIZED_MODEL
    target = Path(output_dir) / relative_path
    with tempfile.TemporaryDirectory() as scratch:
        fp32_path = Path(scratch) / "fp32.onnx"
        note = ""
        if is_global_zero:
            export_onnx(model, fp32_path, input_shape)
            if settings.kind == "fp16":
                convert_fp16(fp32_path, target)
            else:
                quantize_int8(fp32_path, target, calibration_batches(datamodule, settings))
                note = "post-training static INT8 (QDQ, per-channel weights)"
        if settings.kind == "int8_qat":
            drop = _validation_drop(fp32_path, target, datamodule, threads) if is_global_zero else None
            drop = _from_rank_zero(drop)
            if drop > settings.max_top1_drop:
                tuned = fine_tune_qat(model, teacher, settings, datamodule=datamodule, loss=loss, make_trainer=make_trainer)
                if is_global_zero:
                    export_onnx(tuned, fp32_path, input_shape)
                    quantize_int8(fp32_path, target, calibration_batches(datamodule, settings))
                note = (f"INT8 after {settings.qat_epochs} epochs of quantization-aware fine-tuning "
                        f"(post-training INT8 lost {drop:.2%} of validation top-1)")
            else:
                note = f"post-training INT8 was within {settings.max_top1_drop:.2%} of fp32 on validation: no fine-tuning"
    if not is_global_zero:
        return None
    session = onnx_session(target, threads=threads)
    result = QuantizedResult(
        kind=settings.kind,
        top1=onnx_top1(session, datamodule.test_dataloader()),
        val_top1=onnx_top1(session, datamodule.val_dataloader()),
        size_bytes=file_size(target),
        runtime=runtime_name(),
        model_path=str(relative_path),
        note=note or "fp16 weights, float32 input and output",
    )
    rank_zero_info(f"[Spiral] quantized ({settings.kind}): test top-1 {result.top1:.2%}, {result.size_bytes} bytes "
                   f"in {result.runtime}; its latency is timed beside the stages")
    return result


def _check_stage_arguments(settings: QuantizeSettings, model: nn.Module, teacher: nn.Module,
                           make_trainer: Callable[[int], L.Trainer]) -> None:
    """What :func:`run_quantize_stage` quantizes, how, and with what it fine-tunes."""
    if not isinstance(settings, QuantizeSettings) or settings.kind == "none":
        raise refuse("settings", shown(settings), "a QuantizeSettings whose kind is not 'none'")
    check_network("model", model)
    check_network("teacher", teacher)
    if not callable(make_trainer):
        raise refuse("make_trainer", shown(make_trainer), "a callable that returns a Trainer for a number of epochs")


def calibration_batches(datamodule: L.LightningDataModule, settings: QuantizeSettings) -> Iterator[torch.Tensor]:
    """The first ``calibration_batches`` input batches of the training or validation split."""
    loader = datamodule.train_dataloader() if settings.calibration_split == "train" else datamodule.val_dataloader()
    return (images for images, _labels in itertools.islice(loader, settings.calibration_batches))


def fine_tune_qat(
    model: nn.Module,
    teacher: nn.Module,
    settings: QuantizeSettings,
    *,
    datamodule: L.LightningDataModule,
    loss: DistillationLoss | None,
    make_trainer: Callable[[int], L.Trainer],
) -> nn.Module:
    """Fit a fake-quantized copy of ``model`` distilling from ``teacher``; return it with the rounding baked in."""
    student = add_fake_quant(model).train()
    module = SpiralModule(
        student,
        teacher=teacher if loss is not None else None,
        loss=loss,
        num_classes=datamodule.num_classes,
        optimizer=functools.partial(torch.optim.SGD, lr=settings.qat_lr, momentum=0.9),
    )
    make_trainer(settings.qat_epochs).fit(module, datamodule=datamodule)
    return remove_fake_quant(module.student).eval()


def _validation_drop(fp32_path: Path, int8_path: Path, datamodule: L.LightningDataModule, threads: int) -> float:
    """Validation top-1 of the fp32 export minus that of the INT8 one, both in ONNX Runtime."""
    fp32 = onnx_top1(onnx_session(fp32_path, threads=threads), datamodule.val_dataloader())
    int8 = onnx_top1(onnx_session(int8_path, threads=threads), datamodule.val_dataloader())
    return fp32 - int8


def _from_rank_zero(value: float | None) -> float:
    """Rank 0's value on every rank: under DDP all processes must agree on whether to fine-tune."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        shared = [value]
        torch.distributed.broadcast_object_list(shared, src=0)
        value = shared[0]
    return float(value)
