"""Latency of several models measured in alternating rounds, so that a drift of the machine's speed hits them alike.

On the shared 2-core VM these benchmarks run on, the same teacher's batch-64 median spans
37.2–42.6 ms over the rounds of one compare.py pass and was 33.0 ms in an earlier one: timing a
teacher first and its students minutes later mixes that drift into every speed-up. Here every round times every model once (``measure_latency``:
warm-up, then the median of ``repeats`` calls), the reported latency is the median over rounds, and
each speed-up is taken within a round and summarised by its median and range over rounds.

Example:
    >>> import torch.nn as nn
    >>> times = interleaved_latency({"a": nn.Linear(4, 2), "b": nn.Linear(4, 2)}, (4,), batch_sizes=(1,),
    ...                             layouts=("contiguous",), rounds=2, repeats=2)
    >>> len(times["a"]["contiguous"][1])
    2
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn as nn

from lightning_spiral.measure import MemoryFormat, measure_latency

Rounds = dict[str, dict[int, list[float]]]  # layout -> batch size -> one median per round (ms)


def interleaved_latency(models: Mapping[str, nn.Module], input_shape: Sequence[int], *, batch_sizes: Sequence[int] = (1, 64),
                        layouts: Sequence[MemoryFormat] = ("contiguous", "channels_last"), rounds: int = 5,
                        repeats: int = 20, threads: int = 2) -> dict[str, Rounds]:
    """Per model, layout and batch size: the median latency of each round (rounds alternate over the models)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    times: dict[str, Rounds] = {name: {layout: {batch: [] for batch in batch_sizes} for layout in layouts} for name in models}
    for _ in range(rounds):
        for layout in layouts:
            for batch in batch_sizes:
                for name, model in models.items():
                    times[name][layout][batch].append(
                        measure_latency(model, input_shape, batch, repeats=repeats, threads=threads, memory_format=layout))
    return times


def fastest_layout(rounds: Rounds, batch: int) -> str:
    """The layout with the lowest median over rounds at ``batch`` (what a deployment would pick)."""
    return min(rounds, key=lambda layout: statistics.median(rounds[layout][batch]))


def summarise_timings(rounds: Rounds, reference: Rounds, batch_sizes: Sequence[int] = (1, 64)) -> dict[str, Any]:
    """Latency in the faster layout per batch size, and the per-round speed-up over ``reference`` (each in its faster layout)."""
    out: dict[str, Any] = {"latency_ms_by_layout": {layout: {batch: statistics.median(values) for batch, values in by_batch.items()}
                                                    for layout, by_batch in rounds.items()},
                           "latency_ms_rounds": rounds}
    for batch in batch_sizes:
        mine, theirs = fastest_layout(rounds, batch), fastest_layout(reference, batch)
        speedups = [ref / own for ref, own in zip(reference[theirs][batch], rounds[mine][batch])]
        out |= {f"latency_ms_b{batch}": statistics.median(rounds[mine][batch]), f"layout_b{batch}": mine,
                f"speedup_b{batch}": statistics.median(speedups), f"speedup_b{batch}_range": [min(speedups), max(speedups)]}
    return out
