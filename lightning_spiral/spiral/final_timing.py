"""After the last stage: the teacher, every kept stage and the quantized artifact timed side by side, for the report.

Each stage's own latency is measured alone, minutes after the teacher's, so drift and other jobs'
load go straight into its speed-up; those per-stage figures are provisional. Here the saved
networks — and, when the run quantized its final model, that model's ONNX Runtime session — are
timed in alternating rounds (:func:`lightning_spiral.timing.interleaved_calls`), each speed-up is
taken within a round, and a figure whose rounds disagree by more than
:data:`~lightning_spiral.timing.MAX_SPREAD` is flagged (:func:`~lightning_spiral.timing.side_by_side`).
The session runs on the same thread count as the PyTorch models. When the Trainer runs on CUDA the
networks are timed on that GPU as well, in fp32 and in the Trainer's precision (:func:`cuda_timing`).

Example:
    >>> import torch, torch.nn as nn
    >>> timing = time_side_by_side({0: nn.Linear(8, 8), 1: nn.Linear(8, 2)}, torch.zeros(1, 8), rounds=2,
    ...                            repeats=2, threads=1)
    >>> sorted(timing["stages"]), timing["device"], timing["rounds"], timing["quantized"]
    (['0', '1'], 'cpu', 2, None)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from lightning_spiral.deploy.runtime import onnx_call, onnx_session, runtime_name
from lightning_spiral.records import SpiralReport
from lightning_spiral.timing import (
    MAX_SPREAD, Call, CallKey, forward_calls, free_threads, interleaved_calls, side_by_side, timed_precision,
)

BATCH_SIZES = (1, 64)
CUDA_ACCELERATORS = ("gpu", "cuda", "auto")
QUANTIZED_CONTENDER = "quantized"  # the artifact's name among the contenders; stages are named by number


def time_side_by_side(networks: Mapping[int, nn.Module], example: torch.Tensor, *, rounds: int, repeats: int,
                      threads: int, device: str = "cpu", precision: str = "32-true",
                      quantized: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ``timing`` section of the report: under ``stages``, per stage number (as a string), its side-by-side figures.

    ``networks`` maps stage numbers to networks, the teacher (0) first; ``example`` gives the sample
    shape. Image inputs ``(C, H, W)`` are timed in both NCHW and NHWC, each model in its faster one.
    ``quantized``: the quantized artifact's ONNX file, timed in the same rounds in ONNX Runtime on the
    CPU; its figures are the section's ``quantized`` entry (``None`` without one). ``precision``: a key
    of :data:`~lightning_spiral.timing.PRECISIONS`, the dtype every network (the teacher too) runs in.
    """
    input_shape = tuple(example.shape[1:])
    layouts = ("contiguous", "channels_last") if len(input_shape) == 3 else ("contiguous",)
    threads, note = free_threads(threads)
    models = {str(stage): network for stage, network in networks.items()}
    calls = forward_calls(models, input_shape, batch_sizes=BATCH_SIZES, layouts=layouts, device=device, precision=precision)
    if quantized is not None:
        calls.update(served_calls(quantized, input_shape, threads))
    times = interleaved_calls(calls, rounds=rounds, repeats=repeats, threads=threads)
    stages = side_by_side(times, reference="0", batch_sizes=BATCH_SIZES)
    served = stages.pop(QUANTIZED_CONTENDER, None)
    return {"device": str(device), "precision": precision, "threads": threads, "rounds": rounds, "repeats": repeats, "max_spread": MAX_SPREAD,
            "note": note, "stages": stages,
            "quantized": None if served is None else {"runtime": runtime_name(), **served}}


def served_calls(path: str | os.PathLike, input_shape: Sequence[int], threads: int) -> dict[CallKey, Call]:
    """The ONNX Runtime session of the file at ``path`` on ``threads`` threads, one run per batch size (NCHW input as exported)."""
    session = onnx_session(path, threads=threads)
    return {(QUANTIZED_CONTENDER, "contiguous", batch): onnx_call(session, input_shape, batch) for batch in BATCH_SIZES}


def timing_is_due(report: SpiralReport) -> bool:
    """Whether the run still needs its side-by-side timing: none yet, or one from before the quantized artifact existed."""
    return report.timing is None or (report.quantized is not None and not report.timing.get("quantized"))


def trains_on_cuda(trainer: Any) -> bool:
    """Whether the stage Trainers (a partial) run on a CUDA GPU that this process can see."""
    accelerator = getattr(trainer, "keywords", {}).get("accelerator", "auto")
    return torch.cuda.is_available() and str(accelerator) in CUDA_ACCELERATORS


def cuda_precisions(trainer: Any) -> list[str]:
    """fp32, then the stage Trainers' (a partial) own precision when it is another one timed here (``"bf16"`` -> ``"bf16-mixed"``).

    Example:
        >>> import functools, lightning.pytorch as L
        >>> cuda_precisions(functools.partial(L.Trainer, precision="bf16")), cuda_precisions(L.Trainer)
        (['32-true', 'bf16-mixed'], ['32-true'])
    """
    trained_in = timed_precision(getattr(trainer, "keywords", {}).get("precision", "32-true"))
    return ["32-true"] + ([trained_in] if trained_in not in (None, "32-true") else [])


def cuda_timing(networks: Mapping[int, nn.Module], example: torch.Tensor, *, precisions: Sequence[str], rounds: int,
                repeats: int, threads: int, device: str = "cuda") -> dict[str, dict[str, Any]]:
    """The report's ``timing["cuda"]``: per precision, the networks timed side by side on the GPU (:func:`time_side_by_side`).

    Each precision's speed-ups are over the teacher in that same precision; ``device`` is a parameter
    so that the same path runs on the CPU where no GPU is present (``"bf16-mixed"`` autocasts there too).

    Example:
        >>> import torch.nn as nn
        >>> timing = cuda_timing({0: nn.Linear(8, 8), 1: nn.Linear(8, 2)}, torch.zeros(1, 8), precisions=["32-true", "bf16-mixed"],
        ...                      rounds=1, repeats=1, threads=1, device="cpu")
        >>> sorted(timing), timing["bf16-mixed"]["precision"]
        (['32-true', 'bf16-mixed'], 'bf16-mixed')
    """
    return {precision: time_side_by_side(networks, example, rounds=rounds, repeats=repeats, threads=threads, device=device,
                                         precision=precision) for precision in precisions}
