"""How the report's latencies were timed, in words: the speed-up cells and the lines under the table.

The figures come from the side-by-side timing (:mod:`lightning_spiral.spiral.final_timing`),
stored in ``report.json`` under ``timing``; a figure not timed so is provisional (``≈``), one whose
rounds disagree by more than the stated spread is doubtful (``?``). Used by the markdown report and
the terminal table alike (:mod:`lightning_spiral.report`).

Example:
    >>> timed_speedup({"speedup_b64": 2.21, "flagged": [64]})
    '2.21×?'
"""

from __future__ import annotations

from typing import Any

from lightning_spiral.records import SpiralReport, StageResult, quantized_timing, ratio, side_by_side_of


def speedup_cell(report: SpiralReport, result: StageResult) -> str:
    """``"2.21×"`` timed side by side, ``"2.21×?"`` when its rounds disagree, ``"≈2.21×"`` when provisional."""
    timed = side_by_side_of(report, result)
    if timed is not None:
        return timed_speedup(timed)
    speedup = ratio(report.teacher.latency_ms_b64, result.latency_ms_b64)
    return "–" if speedup is None else f"≈{speedup:.2f}×"


def timing_line(report: SpiralReport) -> str:
    """How the latencies and speed-ups were timed, for under the table."""
    timing = report.timing
    if timing is None:
        return "Latency: each stage timed alone (≈: provisional figures)."
    line = (f"Latency: timed side by side in {timing['rounds']} alternating rounds on {timing['device']}, "
            f"{timing['threads']} threads, the faster of NCHW/NHWC; speed-ups within rounds (median)")
    served = quantized_timing(report)
    if any(stage["flagged"] for stage in timing["stages"].values()) or (served is not None and served["flagged"]):
        line += f"; ? = rounds disagree by more than {timing['max_spread']:.0%} (a busy machine?)"
    return line + (f". Note: {timing['note']}." if timing.get("note") else ".")


def quantized_line(report: SpiralReport) -> str:
    """The quantized artifact's speed-up over the teacher, timed in the same rounds (``""`` when not timed so).

    ``?`` marks a flagged figure, as in the table (:func:`timing_line` says what it means).

    Example:
        >>> t = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0,
        ...     latency_ms_b64=10.0, size_bytes=4096, model_path="stage_0/model.pt", kept=True,
        ...     amount=0.0, wall_s=100.0)
        >>> from lightning_spiral.records import QuantizedResult
        >>> q = QuantizedResult(kind="int8_ptq", top1=0.8, val_top1=0.8, size_bytes=1024,
        ...     runtime="onnxruntime 1.32.0", model_path="quantized/model.onnx")
        >>> figures = {"latency_ms_b64": 2.5, "latency_ms_b64_range": [2.4, 2.7], "speedup_b64": 4.0,
        ...     "speedup_b64_range": [3.8, 4.1], "flagged": [], "runtime": "onnxruntime 1.32.0"}
        >>> print(quantized_line(SpiralReport(teacher=t, quantized=q, timing={"rounds": 5, "threads": 2, "stages": {},
        ...     "max_spread": 0.15, "quantized": figures})))
        int8_ptq in onnxruntime 1.32.0 (2 threads, batch 64): 4.00× the teacher's speed (3.80–4.10× over 5 rounds), 2.50 ms; timed in the same alternating rounds as the stages.
    """
    timed = quantized_timing(report)
    if report.quantized is None or timed is None:
        return ""
    timing, (low, high) = report.timing or {}, timed["speedup_b64_range"]
    return (f"{report.quantized.kind} in {timed['runtime']} ({timing['threads']} threads, batch 64): "
            f"{timed_speedup(timed)} the teacher's speed ({low:.2f}–{high:.2f}× over {timing['rounds']} rounds), "
            f"{timed['latency_ms_b64']:.2f} ms; timed in the same alternating rounds as the stages.")


def timed_speedup(timed: dict[str, Any], batch: int = 64) -> str:
    """A side-by-side speed-up at ``batch``, ``?`` appended when its rounds disagree."""
    return f"{timed[f'speedup_b{batch}']:.2f}×" + ("?" if batch in timed["flagged"] else "")


def cuda_lines(report: SpiralReport) -> list[str]:
    """The final model on the GPU the Trainer ran on, one line per precision timed there (none without a GPU).

    Example:
        >>> t = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0,
        ...     latency_ms_b64=10.0, size_bytes=4096, model_path="stage_0/model.pt", kept=True,
        ...     amount=0.0, wall_s=100.0)
        >>> figures = {"latency_ms_b1": 0.5, "latency_ms_b64": 1.0, "speedup_b1": 1.0, "speedup_b64": 1.0, "flagged": []}
        >>> section = {"device": "cuda", "rounds": 5, "stages": {"0": figures}}
        >>> cuda_lines(SpiralReport(teacher=t, timing={"stages": {}, "cuda": {"bf16-mixed": section}}))
        ['On cuda in bf16-mixed: the teacher 0.50 ms at batch 1, 1.00 ms at batch 64 (5 alternating rounds).']
    """
    lines = []
    final = report.final
    name = "the teacher" if final.stage == 0 else f"stage {final.stage}"
    for precision, section in ((report.timing or {}).get("cuda") or {}).items():
        timed = section["stages"].get(str(final.stage))
        if timed is None:
            continue
        speedups = "" if final.stage == 0 else (
            f", {timed_speedup(timed, 1)} and {timed_speedup(timed)} the teacher's speed in {precision}")
        lines.append(f"On {section['device']} in {precision}: {name} {timed['latency_ms_b1']:.2f} ms at batch 1, "
                     f"{timed['latency_ms_b64']:.2f} ms at batch 64{speedups} ({section['rounds']} alternating rounds).")
    return lines
