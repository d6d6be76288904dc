"""The report's GPU figures: one ``lightning-spiral`` run on a CUDA GPU, its stages timed there in fp32 and the Trainer's precision.

A standalone script for a machine with a CUDA GPU (it refuses in one line without one). It runs
``python -m lightning_spiral trainer=gpu`` (``conf/trainer/gpu.yaml``: one GPU, ``16-mixed``) into
``--out`` with any further Hydra overrides given after ``--``. The run's final timing then holds,
besides the CPU figures, ``timing["cuda"]``: the teacher and every kept stage timed side by side on
that GPU in fp32 and in the Trainer's precision (:func:`lightning_spiral.spiral.final_timing.cuda_timing`).
This script prints those figures as a table next to the CPU ones, writes them to
``results/cuda_timing.json`` and to the ``cuda_timing`` section of ``RESULTS.md``.

Usage:
    python benchmarks/cuda_timing.py                                  # the default run on the GPU (~1-2 min)
    python benchmarks/cuda_timing.py --out runs/gpu -- experiment=cifar10_resnet56
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lightning_spiral.records import machine_info

HERE = Path(__file__).resolve().parent
SECTION = "cuda_timing"


def run_on_gpu(out: Path, overrides: list[str]) -> float:
    """The spiral with ``trainer=gpu`` into ``out``; its wall time in seconds."""
    command = [sys.executable, "-m", "lightning_spiral", "trainer=gpu", "trainer.enable_progress_bar=false",
               f"hydra.run.dir={out}", "spiral.overwrite=true", *overrides]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def figure_rows(timing: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per device, precision and stage: latencies and speed-ups over the teacher in that precision."""
    sections = [("cpu", "32-true", timing)] + [("cuda", precision, section) for precision, section in timing["cuda"].items()]
    return [{"device": device, "precision": precision, "stage": stage, **{key: figures[key] for key in (
                "latency_ms_b1", "latency_ms_b64", "speedup_b1", "speedup_b64", "speedup_b64_range", "flagged")}}
            for device, precision, section in sections for stage, figures in section["stages"].items()]


def render_markdown(rows: list[dict[str, Any]], header: str) -> str:
    """The RESULTS.md section: ``header``, then the table (``?``: rounds disagree by more than the stated spread)."""
    lines = [header, "", "| device | precision | stage | b1 ms | b64 ms | speed-up b1 | speed-up b64 (min–max) |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for row in rows:
        low, high = row["speedup_b64_range"]
        doubt = "?" if 64 in row["flagged"] else ""
        lines.append(f"| {row['device']} | {row['precision']} | {'teacher' if row['stage'] == '0' else row['stage']} | "
                     f"{row['latency_ms_b1']:.3f} | {row['latency_ms_b64']:.3f} | {row['speedup_b1']:.2f}× | "
                     f"{row['speedup_b64']:.2f}×{doubt} ({low:.2f}–{high:.2f}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="the run directory (default: a new temporary folder)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the run, after --")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("no CUDA GPU is visible (torch.cuda.is_available() is False): run this on a machine with one")
    from results_io import update_results_section, write_json  # one writer of RESULTS.md sections

    out = args.out or Path(tempfile.mkdtemp(prefix="cuda_timing_"))
    wall = run_on_gpu(out, args.overrides)
    timing = json.loads((out / "report.json").read_text())["timing"]
    rows = figure_rows(timing)
    command = " ".join(["python benchmarks/cuda_timing.py", *(["--", *args.overrides] if args.overrides else [])])
    header = (f"`{command}` on {torch.cuda.get_device_name()} ({wall:.0f} s wall): the run's final timing, "
              f"{timing['rounds']} alternating rounds per device and precision; speed-ups over the teacher in the same "
              "precision.")
    result = {"command": command, "gpu": torch.cuda.get_device_name(), "wall_s": wall, "rows": rows,
              "machine": machine_info(timing["threads"])}
    write_json(HERE / "results" / f"{SECTION}.json", result)
    markdown = render_markdown(rows, header)
    update_results_section(HERE / "RESULTS.md", SECTION, "cuda_timing.py — the report's GPU figures", markdown)
    print(markdown)
    return result


if __name__ == "__main__":
    main()
