"""The timing module: alternating rounds of models and other calls, speed-ups within rounds, the spread flag, no oversubscription."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn as nn

import lightning_spiral.timing as timing
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.timing import forward_calls, prepared, timed_precision
from lightning_spiral.models.spec import ModelSpec, attach_spec
from lightning_spiral.records import SpiralReport, StageResult
from lightning_spiral.report_timing import speedup_cell, timing_line


def test_rounds_alternate_over_the_models(monkeypatch) -> None:
    order: list[int] = []
    monkeypatch.setattr(timing, "time_calls", lambda call, **_: order.append(call.func.out_features) or 1.0)
    models = {"a": nn.Linear(4, 1), "b": nn.Linear(4, 2), "c": nn.Linear(4, 3)}
    times = timing.interleaved_latency(models, (4,), batch_sizes=(1,), layouts=("contiguous",), rounds=3, repeats=1)
    assert order == [1, 2, 3] * 3  # every round times every model once, in turn
    assert times["b"]["contiguous"][1] == [1.0, 1.0, 1.0]


class SlowingMachine:
    """Contenders that sleep a known cost, on a machine 3x slower in round 2 (a round starts at the first contender)."""

    def __init__(self, costs_ms: dict[str, float]) -> None:
        self.costs_ms, self.first, self.round, self.log = costs_ms, next(iter(costs_ms)), 0, []

    def call(self, name: str) -> timing.Call:
        def run() -> None:
            if name == self.first and self.log and self.log[-1] != name:
                self.round += 1
            self.log.append(name)
            time.sleep(self.costs_ms[name] * (3 if self.round == 1 else 1) / 1e3)
        return run


def test_any_call_is_timed_in_alternating_rounds_and_its_speedup_is_taken_within_each_round() -> None:
    # a serving runtime's session run is a zero-argument call like a model's forward: here, sleeps of known cost
    machine = SlowingMachine({"0": 8.0, "1": 4.0, "quantized": 2.0})
    calls = {(name, "contiguous", 64): machine.call(name) for name in machine.costs_ms}
    times = timing.interleaved_calls(calls, rounds=3, repeats=2, threads=1)
    turns = [name for index, name in enumerate(machine.log) if index == 0 or machine.log[index - 1] != name]
    assert turns == ["0", "1", "quantized"] * 3  # every round times every contender once, in turn
    served = timing.side_by_side(times, reference="0", batch_sizes=(64,))["quantized"]
    low, high = served["latency_ms_b64_range"]
    assert high / low > 2.5  # the slow spell moved every latency ...
    assert all(3.0 < ratio <= 4.2 for ratio in served["speedup_b64_range"])  # ... not the within-round ratios (8 / 2)
    assert served["flagged"] == [] and served["layout_b64"] == "contiguous"
    alone = times["0"]["contiguous"][64][0] / times["quantized"]["contiguous"][64][1]  # teacher fast, artifact slow
    assert alone < 2.0  # what timing them apart would have reported


def rounds_of(*values: float) -> timing.Rounds:
    return {"contiguous": {64: list(values)}}


def test_speedups_are_taken_within_rounds_and_summarised_by_median_and_range() -> None:
    # the machine slows down 2x in round 2: per-round ratios stay 4.0, 4.0, 4.0
    times = {"teacher": rounds_of(40.0, 80.0, 40.0), "student": rounds_of(10.0, 20.0, 10.0)}
    summary = timing.side_by_side(times, reference="teacher", batch_sizes=(64,))["student"]
    assert summary["speedup_b64"] == 4.0 and summary["speedup_b64_range"] == [4.0, 4.0]
    assert summary["latency_ms_b64"] == 10.0 and summary["latency_ms_b64_range"] == [10.0, 20.0]
    assert summary["flagged"] == []
    # timed apart (teacher in the fast spell, the student in the slow one) it would have read 2.0x


def test_a_speedup_whose_rounds_disagree_is_flagged() -> None:
    times = {"teacher": rounds_of(40.0, 40.0, 40.0), "student": rounds_of(10.0, 20.0, 10.0)}  # ratios 4, 2, 4
    summary = timing.side_by_side(times, reference="teacher", batch_sizes=(64,), max_spread=0.15)["student"]
    assert summary["flagged"] == [64] and summary["speedup_b64_range"] == [2.0, 4.0]
    assert timing.relative_spread([4.0, 2.0, 4.0]) == 0.5


def test_threads_never_exceed_the_usable_cores(monkeypatch) -> None:
    monkeypatch.setattr(timing, "usable_cores", lambda: 2)
    assert timing.timing_threads(8) == 2 and timing.timing_threads(1) == 1


def test_cores_kept_busy_by_other_processes_are_left_out_with_a_note(monkeypatch) -> None:
    monkeypatch.setattr(timing, "usable_cores", lambda: 2)
    monkeypatch.setattr(timing, "busy_cores_elsewhere", lambda: 1.1)  # a CPU hog on one core
    threads, note = timing.free_threads(2)
    assert threads == 1 and "other processes kept 1.1 of 2 cores busy" in note and "1 thread(s) instead of 2" in note
    monkeypatch.setattr(timing, "busy_cores_elsewhere", lambda: 0.1)
    assert timing.free_threads(2) == (2, None)
    monkeypatch.setattr(timing, "busy_cores_elsewhere", lambda: 5.0)
    assert timing.free_threads(2)[0] == 1  # never fewer than one


def test_a_busy_loop_is_seen_as_a_busy_core() -> None:
    import subprocess
    import sys
    import time

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = timing.busy_cores_elsewhere()
    finally:
        hog.kill()
        hog.wait()
    assert busy >= 0.8  # the loop keeps (about) one core busy, whatever else runs


def stage(number: int, latency: float) -> StageResult:
    return StageResult(stage=number, top1=0.9, val_top1=0.9, params=10, macs=100, latency_ms_b1=1.0,
                       latency_ms_b64=latency, size_bytes=10, model_path=f"stage_{number}/model.pt", kept=True,
                       amount=0.0 if number == 0 else 0.2, wall_s=1.0)


def test_the_report_shows_side_by_side_figures_flags_doubtful_ones_and_marks_provisional_ones() -> None:
    report = SpiralReport(teacher=stage(0, 40.0), stages=[stage(1, 30.0), stage(2, 10.0)])
    assert speedup_cell(report, report.stages[1]) == "≈4.00×"  # timed alone: provisional
    assert "timed alone" in timing_line(report)
    figures = {"latency_ms_b1": 1.0, "latency_ms_b64": 20.0, "latency_ms_b64_range": [19.0, 30.0], "flagged": [64],
               "speedup_b64": 2.0, "speedup_b64_range": [1.4, 2.1]}
    report.timing = {"device": "cpu", "threads": 2, "rounds": 5, "max_spread": 0.15, "note": None,
                     "stages": {"0": {**figures, "speedup_b64": 1.0, "flagged": []}, "2": figures}}
    assert speedup_cell(report, report.stages[1]) == "2.00×?"
    assert speedup_cell(report, report.stages[0]) == "≈1.33×"  # stage 1 was not timed side by side
    assert "5 alternating rounds" in timing_line(report) and "more than 15%" in timing_line(report)
    assert SpiralReport.from_dict(report.to_dict()).timing == report.timing


def test_half_precisions_cast_the_weights_or_autocast_the_call_and_token_ids_stay_integers() -> None:
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    timed, x = prepared(net, (8,), 4, precision="bf16-true")
    assert timed[0].weight.dtype == x.dtype == torch.bfloat16 and net[0].weight.dtype == torch.float32  # a copy
    mixed = forward_calls({"net": net}, (8,), batch_sizes=(4,), precision="bf16-mixed")["net", "contiguous", 4]
    assert mixed().dtype == torch.bfloat16  # fp32 weights, autocast call
    assert forward_calls({"net": net}, (8,), batch_sizes=(4,))["net", "contiguous", 4]().dtype == torch.float32
    embedding = attach_spec(nn.Sequential(nn.Embedding(30, 8), nn.Linear(8, 2)), ModelSpec(input_shape=(5,), input_dtype="int64"))
    _, ids = prepared(embedding, (5,), 2, precision="16-true")
    assert ids.dtype == torch.long
    with pytest.raises(SpiralConfigError, match="precision"):
        prepared(net, (8,), 1, precision="fp8")
    assert [timed_precision(p) for p in (16, "bf16", "32", "64-true", "transformer-engine")] == [
        "16-mixed", "bf16-mixed", "32-true", None, None]
