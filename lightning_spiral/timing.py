"""The one timing module: latency on PyTorch's own ``torch.utils.benchmark.Timer``, side by side.

Timing a teacher first and its students minutes later mixes the machine's drift and other jobs'
load into every speed-up (on the shared 2-core VM one model's batch-64 median spanned 37–43 ms
within one pass). Here:

- :func:`time_forward` times ``model(x)`` with ``Timer`` (which sets the thread count and
  synchronises an accelerator before reading the clock), warm-up first, fastest of ``repeats``;
- :func:`interleaved_calls` times several contenders in alternating rounds: every round times every
  contender once, in every layout and batch size, so a slow spell hits them alike. A contender is
  any zero-argument call prepared on its input — a model's forward (:func:`forward_calls`;
  :func:`interleaved_latency` does both) or a serving runtime's session run;
- :func:`side_by_side` takes each speed-up within a round, and reports the median over rounds, its
  min–max, and a ``flagged`` list of batch sizes whose rounds disagree by more than ``max_spread``
  (relative range), which a report must show as doubtful instead of as fact;
- :func:`timing_threads` never uses more threads than the cores this process may run on
  (``os.sched_getaffinity``), and :func:`free_threads` leaves out the cores other processes keep
  busy (sampled from ``/proc/stat``), with a note saying so.

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
import functools
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from lightning_spiral.checks import check_int, refuse
from lightning_spiral.models.spec import random_input

MemoryFormat = Literal["contiguous", "channels_last"]
Rounds = dict[str, dict[int, list[float]]]  # layout -> batch size -> one latency per round (ms)
Call = Callable[[], Any]  # one timed call, its input prepared beforehand
CallKey = tuple[str, str, int]  # (contender, layout, batch size)
MAX_SPREAD = 0.15  # a speed-up whose rounds span more than 15% of its median is flagged
# Lightning precision names -> (dtype, how): "autocast" runs fp32 weights under torch.autocast, "cast" converts the weights
PRECISIONS: dict[str, tuple[torch.dtype | None, str]] = {
    "32-true": (None, "fp32"), "16-mixed": (torch.float16, "autocast"), "bf16-mixed": (torch.bfloat16, "autocast"),
    "16-true": (torch.float16, "cast"), "bf16-true": (torch.bfloat16, "cast"),
}
PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}  # Lightning's short names


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def timing_threads(threads: int) -> int:
    """``threads``, capped at :func:`usable_cores`: more threads than cores only time the contention."""
    return min(check_int("threads", threads, 1), usable_cores())


def busy_cores_elsewhere(sample_s: float = 0.3) -> float:
    """How many cores other processes keep busy now: ``/proc/stat`` sampled while this process sleeps.

    Our own CPU time in the sample (threads still spinning) is subtracted. 0.0 where ``/proc/stat``
    is missing (not Linux).
    """
    stat = Path("/proc/stat")
    if not stat.is_file():
        return 0.0

    def busy_and_total() -> tuple[float, float]:
        fields = [float(value) for value in stat.read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait, in clock ticks
        return sum(fields) - idle, sum(fields)

    ticks = os.sysconf("SC_CLK_TCK")
    own_before, (busy_before, total_before) = sum(os.times()[:2]), busy_and_total()
    time.sleep(sample_s)
    own_after, (busy_after, total_after) = sum(os.times()[:2]), busy_and_total()
    cores = os.cpu_count() or 1
    elapsed_ticks = (total_after - total_before) / cores
    others = (busy_after - busy_before) - (own_after - own_before) * ticks
    return max(0.0, others / elapsed_ticks) if elapsed_ticks else 0.0


def free_threads(threads: int) -> tuple[int, str | None]:
    """Threads for a timing session: at most the usable cores not kept busy by other processes (at least 1).

    With a core taken by another job, a 2-thread kernel waits for its descheduled thread at every
    barrier and its latency jumps about at random; one thread on the free core is timed cleanly.
    Returns the count and a note when other load was found (``None`` otherwise).
    """
    cores = usable_cores()
    busy = busy_cores_elsewhere()
    chosen = max(1, min(timing_threads(threads), cores - round(busy)))
    if busy < 0.5:
        return chosen, None
    return chosen, (f"other processes kept {busy:.1f} of {cores} cores busy, so the models were timed with "
                    f"{chosen} thread(s) instead of {threads}; speed-ups are taken within alternating rounds")


def time_calls(call: Callable[[], Any], *, repeats: int = 20, warmup: int = 5, threads: int = 1) -> float:
    """Milliseconds of the fastest of ``repeats`` calls of ``call()`` (after ``warmup``), timed by ``torch.utils.benchmark.Timer``.

    The fastest, not the median: other load only ever adds time to a call, so the minimum is the
    figure least moved by a busy machine (``timeit``'s own advice).
    """
    from torch.utils.benchmark import Timer  # here: importing it warns "No CUDA runtime is found" on CPU machines

    timer = Timer(stmt="call()", globals={"call": call}, num_threads=threads)
    if warmup:
        timer.timeit(number=warmup)
    return 1e3 * min(timer.timeit(number=1).raw_times[0] for _ in range(repeats))


def time_forward(model: nn.Module, x: torch.Tensor, *, repeats: int = 20, warmup: int = 5, threads: int = 1) -> float:
    """Milliseconds of ``model(x)`` under ``torch.inference_mode()``, fastest of ``repeats`` (see :func:`time_calls`).

    ``model`` must already be in the mode and on the device it is timed in (see :func:`prepared`).
    """
    with torch.inference_mode():
        return time_calls(lambda: model(x), repeats=repeats, warmup=warmup, threads=threads)


def timed_precision(precision: str | int) -> str | None:
    """Lightning's ``precision`` as a key of :data:`PRECISIONS` (``"bf16"`` -> ``"bf16-mixed"``), ``None`` for one not timed here.

    Example:
        >>> timed_precision(16), timed_precision("bf16-true"), timed_precision("64-true")
        ('16-mixed', 'bf16-true', None)
    """
    name = PRECISION_ALIASES.get(str(precision), str(precision))
    return name if name in PRECISIONS else None


def prepared(model: nn.Module, input_shape: Sequence[int], batch_size: int, layout: MemoryFormat = "contiguous",
             device: str | torch.device = "cpu", precision: str = "32-true") -> tuple[nn.Module, torch.Tensor]:
    """An eval-mode copy of ``model`` on ``device`` in ``layout``, and a random batch of ``(batch_size, *input_shape)``.

    A copy, so the caller's model keeps its device, layout and mode. A ``"-true"`` half ``precision``
    converts the copy's weights and a float batch to that dtype (mixed ones stay fp32: see :func:`forward_calls`).
    """
    if layout not in ("contiguous", "channels_last"):
        raise refuse("memory_format", layout, "one of ['contiguous', 'channels_last']")
    if precision not in PRECISIONS:
        raise refuse("precision", precision, f"one of {sorted(PRECISIONS)}")
    timed = copy.deepcopy(model).eval().to(device)
    x = random_input(model, input_shape, batch_size, device)  # (B, *input_shape)
    dtype, how = PRECISIONS[precision]
    if how == "cast":
        timed = timed.to(dtype)
        x = x.to(dtype) if x.is_floating_point() else x  # token ids stay integers
    if layout == "channels_last":
        timed = timed.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)  # (B, C, H, W) stored as NHWC
    return timed, x


def autocast_forward(model: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> Any:
    """``model(x)`` under ``torch.autocast`` in ``dtype``: how a ``"-mixed"`` precision model serves."""
    with torch.autocast(x.device.type, dtype=dtype):
        return model(x)


def forward_calls(models: Mapping[str, nn.Module], input_shape: Sequence[int], *, batch_sizes: Sequence[int] = (1, 64),
                  layouts: Sequence[MemoryFormat] = ("contiguous",), device: str | torch.device = "cpu",
                  precision: str = "32-true") -> dict[CallKey, Call]:
    """``model(x)`` of every model, prepared (:func:`prepared`) in every layout and batch size, keyed for :func:`interleaved_calls`.

    ``precision`` (a key of :data:`PRECISIONS`): ``"-mixed"`` ones run each call under ``torch.autocast``.

    Example:
        >>> calls = forward_calls({"net": nn.Linear(4, 2)}, (4,), batch_sizes=(1, 8))
        >>> sorted(calls), tuple(calls["net", "contiguous", 8]().shape)
        ([('net', 'contiguous', 1), ('net', 'contiguous', 8)], (8, 2))
    """
    calls: dict[CallKey, Call] = {}
    for name, model in models.items():
        for layout in layouts:
            for batch in batch_sizes:
                timed, x = prepared(model, input_shape, batch, layout, device, precision)
                dtype, how = PRECISIONS[precision]
                calls[name, layout, batch] = (functools.partial(autocast_forward, timed, x, dtype) if how == "autocast"
                                              else functools.partial(timed, x))
    return calls


def interleaved_calls(calls: Mapping[CallKey, Call], *, rounds: int = 5, repeats: int = 20, threads: int = 2) -> dict[str, Rounds]:
    """Per contender, layout and batch size: the latency of each round; every round times every call once, in order.

    A call is anything timed with no argument: a prepared ``model(x)`` (:func:`forward_calls`), or
    a serving runtime's session run on a batch it was given beforehand. Calls run under
    ``torch.inference_mode()`` (as :func:`time_forward` does), which calls outside PyTorch ignore.

    Example:
        >>> calls = {("fast", "contiguous", 1): lambda: None, ("slow", "contiguous", 1): lambda: time.sleep(1e-3)}
        >>> times = interleaved_calls(calls, rounds=2, repeats=2, threads=1)
        >>> len(times["slow"]["contiguous"][1]), times["slow"]["contiguous"][1][0] > times["fast"]["contiguous"][1][0]
        (2, True)
    """
    check_int("rounds", rounds, 1)
    threads = timing_threads(threads)
    times: dict[str, Rounds] = {}
    for name, layout, batch in calls:
        times.setdefault(name, {}).setdefault(layout, {})[batch] = []
    with torch.inference_mode():
        for _ in range(rounds):
            for (name, layout, batch), call in calls.items():
                times[name][layout][batch].append(time_calls(call, repeats=repeats, threads=threads))
    return times


def interleaved_latency(models: Mapping[str, nn.Module], input_shape: Sequence[int], *, batch_sizes: Sequence[int] = (1, 64),
                        layouts: Sequence[MemoryFormat] = ("contiguous", "channels_last"), rounds: int = 5,
                        repeats: int = 20, threads: int = 2, device: str | torch.device = "cpu") -> dict[str, Rounds]:
    """Per model, layout and batch size: the latency of each round (:func:`interleaved_calls` of :func:`forward_calls`)."""
    calls = forward_calls(models, input_shape, batch_sizes=batch_sizes, layouts=layouts, device=device)
    return interleaved_calls(calls, rounds=rounds, repeats=repeats, threads=threads)


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


__all__ = ["MAX_SPREAD", "PRECISIONS", "autocast_forward", "busy_cores_elsewhere", "fastest_layout", "forward_calls",
           "free_threads", "interleaved_calls", "interleaved_latency", "prepared", "relative_spread", "side_by_side",
           "time_calls", "time_forward", "timed_precision", "timing_threads", "usable_cores"]
