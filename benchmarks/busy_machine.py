"""Does a busy machine move the report's speed-ups? The final stage timed side by side, idle and beside a CPU hog.

The report's batch-64 speed-up comes from :mod:`lightning_spiral.spiral.final_timing`: the teacher
and every kept stage timed in alternating rounds, each speed-up taken within a round. This script
takes a finished run (``--run``; by default it runs the default ``lightning-spiral`` command into
``results/busy_run`` first), then times its saved models that way ``--sessions`` times idle and
``--sessions`` times with a busy-loop process pinned to core 0 for the whole session, alternating
idle and busy sessions. It prints the final stage's speed-up per session and the ratio of the busy
median to the idle median, and writes ``results/busy_machine.json``.

Usage:
    python benchmarks/busy_machine.py                      # the default run, 3 idle + 3 busy sessions
    python benchmarks/busy_machine.py --run outputs/x --sessions 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lightning_spiral.atomic import atomic_write_text
from lightning_spiral.io import load_model
from lightning_spiral.models.spec import spec_of
from lightning_spiral.records import machine_info, read_report
from lightning_spiral.spiral.final_timing import time_side_by_side

HERE = Path(__file__).resolve().parent
HOG = "import os\nos.sched_setaffinity(0, {0})\nwhile True:\n    pass\n"


@contextlib.contextmanager
def cpu_hog() -> Iterator[None]:
    """A busy-loop process on core 0 for the duration of the block."""
    process = subprocess.Popen([sys.executable, "-c", HOG])
    try:
        yield
    finally:
        process.kill()
        process.wait()


def finished_run(run: Path | None) -> Path:
    """``run``, or the default command's run in ``results/busy_run`` (made once)."""
    if run is not None:
        return run
    run = HERE / "results" / "busy_run"
    if not (run / "report.json").is_file():
        subprocess.run([sys.executable, "-m", "lightning_spiral", "trainer.enable_progress_bar=false",
                        f"hydra.run.dir={run}", "spiral.overwrite=true"], check=True)
    return run


def final_speedups(run: Path, *, sessions: int, rounds: int, repeats: int, threads: int) -> dict[str, list[float]]:
    """The final stage's side-by-side batch-64 speed-up in each idle and each busy session (alternating)."""
    report = read_report(run)
    networks = {result.stage: load_model(run / result.model_path) for result in (report.teacher, *report.stages)
                if result.kept}
    example = torch.zeros(1, *spec_of(networks[0]).input_shape)  # the registry spec records the input shape
    final = str(report.final.stage)
    speedups: dict[str, list[float]] = {"idle": [], "busy": []}
    for _ in range(sessions):
        for condition in ("idle", "busy"):
            with cpu_hog() if condition == "busy" else contextlib.nullcontext():
                timing = time_side_by_side(networks, example, rounds=rounds, repeats=repeats, threads=threads)
            speedups[condition].append(timing["stages"][final]["speedup_b64"])
            print(f"[busy_machine] {condition}: final stage {final} ×{speedups[condition][-1]:.2f}", flush=True)
    return speedups


def summary(speedups: dict[str, list[float]]) -> dict[str, Any]:
    idle, busy = statistics.median(speedups["idle"]), statistics.median(speedups["busy"])
    return {"idle_median": idle, "busy_median": busy, "busy_over_idle": busy / idle,
            "idle_range": [min(speedups["idle"]), max(speedups["idle"])],
            "busy_range": [min(speedups["busy"]), max(speedups["busy"])]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a finished run directory (default: make the default run)")
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "busy_machine.json")
    args = parser.parse_args(argv)
    run = finished_run(args.run)
    speedups = final_speedups(run, sessions=args.sessions, rounds=args.rounds, repeats=args.repeats, threads=args.threads)
    result = {"run": run.name, "speedups_b64": speedups, **summary(speedups), "machine": machine_info(args.threads),
              "settings": {"sessions": args.sessions, "rounds": args.rounds, "repeats": args.repeats, "threads": args.threads}}
    print(f"| condition | final speed-up b64 (median) | min–max |\n| --- | ---: | --- |\n"
          f"| idle | {result['idle_median']:.2f}× | {result['idle_range'][0]:.2f}–{result['idle_range'][1]:.2f} |\n"
          f"| CPU hog on core 0 | {result['busy_median']:.2f}× | {result['busy_range'][0]:.2f}–{result['busy_range'][1]:.2f} |\n"
          f"busy / idle: {result['busy_over_idle']:.3f}")
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
