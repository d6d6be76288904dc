"""After the last stage: the teacher and every kept stage timed again, side by side, for the report.

Each stage's own latency is measured alone, minutes after the teacher's, so drift and other jobs'
load go straight into its speed-up; those per-stage figures are provisional. Here the saved
networks are timed in alternating rounds (:func:`lightning_spiral.timing.interleaved_latency`),
each speed-up is taken within a round, and a figure whose rounds disagree by more than
:data:`~lightning_spiral.timing.MAX_SPREAD` is flagged (:func:`~lightning_spiral.timing.side_by_side`).

Example:
    >>> import torch, torch.nn as nn
    >>> timing = time_side_by_side({0: nn.Linear(8, 8), 1: nn.Linear(8, 2)}, torch.zeros(1, 8), rounds=2,
    ...                            repeats=2, threads=1)
    >>> sorted(timing["stages"]), timing["device"], timing["rounds"]
    (['0', '1'], 'cpu', 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from lightning_spiral.timing import MAX_SPREAD, free_threads, interleaved_latency, side_by_side

BATCH_SIZES = (1, 64)
CUDA_ACCELERATORS = ("gpu", "cuda", "auto")


def time_side_by_side(networks: Mapping[int, nn.Module], example: torch.Tensor, *, rounds: int, repeats: int,
                      threads: int, device: str = "cpu") -> dict[str, Any]:
    """The ``timing`` section of the report: per stage number (as a string), its side-by-side figures.

    ``networks`` maps stage numbers to networks, the teacher (0) first; ``example`` gives the sample
    shape. Image inputs ``(C, H, W)`` are timed in both NCHW and NHWC, each model in its faster one.
    """
    input_shape = tuple(example.shape[1:])
    layouts = ("contiguous", "channels_last") if len(input_shape) == 3 else ("contiguous",)
    models = {str(stage): network for stage, network in networks.items()}
    threads, note = free_threads(threads)
    times = interleaved_latency(models, input_shape, batch_sizes=BATCH_SIZES, layouts=layouts, rounds=rounds,
                                repeats=repeats, threads=threads, device=device)
    return {"device": str(device), "threads": threads, "rounds": rounds, "repeats": repeats, "max_spread": MAX_SPREAD,
            "note": note, "stages": side_by_side(times, reference="0", batch_sizes=BATCH_SIZES)}


def trains_on_cuda(trainer: Any) -> bool:
    """Whether the stage Trainers (a partial) run on a CUDA GPU that this process can see."""
    accelerator = getattr(trainer, "keywords", {}).get("accelerator", "auto")
    return torch.cuda.is_available() and str(accelerator) in CUDA_ACCELERATORS
