"""The one timing module: latency on PyTorch's own ``torch.utils.benchmark.Timer``, side by side.

Timing a teacher first and its students minutes later mixes the machine's drift and other jobs'
load into every speed-up (on the shared 2-core VM one model's batch-64 median spanned 37–43 ms
within one pass). Here:

- :func:`time_forward` times ``model(x)`` with ``Timer`` (which sets the thread count and
  synchronises an accelerator before reading the clock), warm-up first, median of ``repeats``;
- :func:`interleaved_latency` times several models in alternating rounds: every round times every
  model once, in every layout and batch size, so a slow spell hits them alike;
- :func:`side_by_side` takes each speed-up within a round, and reports the median over rounds, its
  min–max, and a ``flagged`` list of batch sizes whose rounds disagree by more than ``max_spread``
  (relative range), which a report must show as doubtful instead of as fact;
- :func:`timing_threads` never uses more threads than the cores this process may run on
  (``os.sched_getaffinity``), and :func:`load_note` says when other load shares them.

The package (the spiral's report, ``measure_latency``) and ``benchmarks/`` use this module alone.

Example:
    >>> import torch.nn as nn
    >>> rounds = interleaved_latency({"teacher": nn.Linear(8, 8), "student": nn.Linear(8, 2)}, (8,),
    ...                              batch_sizes=(1,), layouts=("contiguous",), rounds=3, repeats=3, threads=1)
    >>> summary = side_by_side(rounds, reference="teacher", batch_sizes=(1,))
    >>> sorted(summary["student"]), len(rounds["student"]["contiguous"][1])
    (['flagged', 'latency_ms_b1', 'latency_ms_b1_range', 'layout_b1', 'speedup_b1', 'speedup_b1_range'], 3)
"""

from __future__ import annotations

import copy
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
from torch.utils.benchmark import Timer

from lightning_spiral.checks import check_int, refuse

MemoryFormat = Literal["contiguous", "channels_last"]
Rounds = dict[str, dict[int, list[float]]]  # layout -> batch size -> one median per round (ms)
MAX_SPREAD = 0.15  # a speed-up whose rounds span more than 15% of its median is flagged


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def timing_threads(threads: int) -> int:
    """``threads``, capped at :func:`usable_cores`: more threads than cores only time the contention."""
    return min(check_int("threads", threads, 1), usable_cores())


def load_note(cores: int | None = None) -> str | None:
    """A note when the 1-minute load average exceeds the usable cores (other work shares them), else ``None``."""
    cores = cores or usable_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load <= cores:
        return None
    return (f"load average {load:.1f} over {cores} usable cores: other work shares the CPU, "
            "so figures may be noisy (speed-ups are taken within rounds, which cancels most of it)")


def time_calls(call: Callable[[], Any], *, repeats: int = 20, warmup: int = 5, threads: int = 1) -> float:
    """Median milliseconds of ``call()`` timed by ``torch.utils.benchmark.Timer``: ``warmup`` calls, then ``repeats``."""
    timer = Timer(stmt="call()", globals={"call": call}, num_threads=threads)
    if warmup:
        timer.timeit(number=warmup)
    return 1e3 * statistics.median(timer.timeit(number=1).raw_times[0] for _ in range(repeats))


def time_forward(model: nn.Module, x: torch.Tensor, *, repeats: int = 20, warmup: int = 5, threads: int = 1) -> float:
    """Median milliseconds of ``model(x)`` under ``torch.inference_mode()`` (see :func:`time_calls`).

    ``model`` must already be in the mode and on the device it is timed in (see :func:`prepared`).
    """
    with torch.inference_mode():
        return time_calls(lambda: model(x), repeats=repeats, warmup=warmup, threads=threads)


def prepared(model: nn.Module, input_shape: Sequence[int], batch_size: int, layout: MemoryFormat = "contiguous",
             device: str | torch.device = "cpu") -> tuple[nn.Module, torch.Tensor]:
    """An eval-mode copy of ``model`` on ``device`` in ``layout``, and a random batch of ``(batch_size, *input_shape)``.

    A copy, so the caller's model keeps its device, layout and mode.
    """
    if layout not in ("contiguous", "channels_last"):
        raise refuse("memory_format", layout, "one of ['contiguous', 'channels_last']")
    timed = copy.deepcopy(model).eval().to(device)
    x = torch.randn(batch_size, *input_shape, device=device)  # (B, *input_shape)
    if layout == "channels_last":
        timed = timed.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)  # (B, C, H, W) stored as NHWC
    return timed, x


def interleaved_latency(models: Mapping[str, nn.Module], input_shape: Sequence[int], *, batch_sizes: Sequence[int] = (1, 64),
                        layouts: Sequence[MemoryFormat] = ("contiguous", "channels_last"), rounds: int = 5,
                        repeats: int = 20, threads: int = 2, device: str | torch.device = "cpu") -> dict[str, Rounds]:
    """Per model, layout and batch size: the median latency of each round (every round times every model once)."""
    check_int("rounds", rounds, 1)
    threads = timing_threads(threads)
    ready = {(name, layout, batch): prepared(model, input_shape, batch, layout, device)
             for name, model in models.items() for layout in layouts for batch in batch_sizes}
    times: dict[str, Rounds] = {name: {layout: {batch: [] for batch in batch_sizes} for layout in layouts} for name in models}
    for _ in range(rounds):
        for (name, layout, batch), (model, x) in ready.items():
            times[name][layout][batch].append(time_forward(model, x, repeats=repeats, threads=threads))
    return times


def fastest_layout(rounds: Rounds, batch: int) -> str:
    """The layout with the lowest median over rounds at ``batch`` (what a deployment would pick)."""
    return min(rounds, key=lambda layout: statistics.median(rounds[layout][batch]))


def relative_spread(values: Sequence[float]) -> float:
    """``(max - min) / median``: how far the rounds disagree, as a fraction of their middle."""
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle else 0.0


def compared(rounds: Rounds, reference: Rounds, batch: int, max_spread: float) -> dict[str, Any]:
    """One model against ``reference`` at ``batch``, each in its faster layout, speed-ups taken within rounds."""
    mine, theirs = fastest_layout(rounds, batch), fastest_layout(reference, batch)
    speedups = [ref / own for ref, own in zip(reference[theirs][batch], rounds[mine][batch])]
    return {f"latency_ms_b{batch}": statistics.median(rounds[mine][batch]), f"layout_b{batch}": mine,
            f"latency_ms_b{batch}_range": [min(rounds[mine][batch]), max(rounds[mine][batch])],
            f"speedup_b{batch}": statistics.median(speedups), f"speedup_b{batch}_range": [min(speedups), max(speedups)],
            "flagged": relative_spread(speedups) > max_spread}


def side_by_side(times: Mapping[str, Rounds], reference: str, batch_sizes: Sequence[int] = (1, 64),
                 max_spread: float = MAX_SPREAD) -> dict[str, dict[str, Any]]:
    """Every model's latency and speed-up over ``reference`` (see the module docstring); ``flagged`` lists doubtful batch sizes."""
    summary: dict[str, dict[str, Any]] = {}
    for name, rounds in times.items():
        entry: dict[str, Any] = {"flagged": []}
        for batch in batch_sizes:
            figures = compared(rounds, times[reference], batch, max_spread)
            if figures.pop("flagged"):
                entry["flagged"].append(batch)
            entry.update(figures)
        summary[name] = entry
    return summary


__all__ = ["MAX_SPREAD", "fastest_layout", "interleaved_latency", "load_note", "prepared", "relative_spread",
           "side_by_side", "time_calls", "time_forward", "timing_threads", "usable_cores"]
