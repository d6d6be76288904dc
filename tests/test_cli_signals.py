"""SIGTERM (SLURM, Kubernetes) and SIGINT (Ctrl+C) during stage 2 of a real subprocess run.

The command must exit non-zero (143 / 130) without recording the interrupted stage; a resume then
redoes it and ends with the architectures and top-1 of an uninterrupted run, the finished stages'
files untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_contract import run_subprocess, snapshot

RUN = ["spiral.teacher_epochs=2", "spiral.stage_epochs=4", "spiral.max_stages=3", "spiral.schedule=constant",
       "pruning.amount=0.2", "spiral.target_macs_ratio=0.3", "spiral.max_accuracy_drop=1.0", "spiral.latency_repeats=2",
       "trainer.enable_progress_bar=false"]
STAGE_2_TRAINING = "stage 2/3 · MACs"  # StageProgress's line as stage 2's fit starts


def interrupted_run(run: Path, signum: int) -> subprocess.CompletedProcess:
    """Start the run, send ``signum`` once stage 2's training has begun, and wait for the command to exit.

    The trigger is the line stage 2 prints when its fit starts (read as it comes, unbuffered), not the
    stage folder plus a fixed sleep: the folder appears before pruning, and on an idle machine a fixed
    sleep could outlast the whole stage.
    """
    process = subprocess.Popen([sys.executable, "-m", "lightning_spiral", *RUN, f"hydra.run.dir={run}"], cwd=run.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"})
    lines = {"stdout": [], "stderr": []}
    training = threading.Event()

    def collect(name: str) -> None:
        for line in getattr(process, name):
            lines[name].append(line)
            if STAGE_2_TRAINING in line:
                training.set()

    readers = [threading.Thread(target=collect, args=(name,), daemon=True) for name in lines]
    for reader in readers:
        reader.start()
    training.wait(timeout=240)
    time.sleep(0.3)  # into the first steps
    process.send_signal(signum)
    process.wait(timeout=120)
    for reader in readers:
        reader.join(timeout=10)
    assert training.is_set(), "".join(lines["stderr"])[-3000:]
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(lines["stdout"]), "".join(lines["stderr"]))


def architectures_and_top1(run: Path) -> list[tuple[int, float]]:
    report = json.loads((run / "report.json").read_text())
    return [(stage["params"], stage["top1"]) for stage in report["stages"]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[tuple[int, float]]:
    run = tmp_path_factory.mktemp("reference") / "run"
    result = run_subprocess([*RUN, f"hydra.run.dir={run}"], cwd=run.parent)
    assert result.code == 0, result.stderr[-3000:]
    return architectures_and_top1(run)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_stage_2_exits_non_zero_and_resume_matches_an_uninterrupted_run(
    signum: int, code: int, reference: list[tuple[int, float]], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    interrupted = interrupted_run(run, signum)
    assert interrupted.returncode == code, interrupted.stderr[-3000:]
    assert f"interrupted by {signal.Signals(signum).name}" in interrupted.stderr
    assert "Traceback" not in interrupted.stdout + interrupted.stderr
    assert len(architectures_and_top1(run)) == 1, interrupted.stderr[-3000:]  # stage 2 was not recorded
    finished = {name: digest for name, digest in snapshot(run).items() if name.startswith(("stage_0/model", "stage_1/model"))}
    assert len(finished) == 2

    resumed = run_subprocess([*RUN, f"resume={run}"], cwd=tmp_path)
    assert resumed.code == 0, resumed.stderr[-3000:]
    after = snapshot(run)
    assert {name: after[name] for name in finished} == finished
    got = architectures_and_top1(run)
    assert [params for params, _ in got] == [params for params, _ in reference]
    assert all(abs(a - b) <= 1e-6 for (_, a), (_, b) in zip(got, reference))
