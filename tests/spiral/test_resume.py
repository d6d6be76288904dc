"""Resuming a spiral: finished stages are kept untouched, a half-finished stage is redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.spiral.resume import discard_unfinished_stages

sys.path.insert(0, os.path.dirname(__file__))
from test_spiral_driver import make_spiral  # noqa: E402


def test_resume_continues_after_the_last_finished_stage(tmp_path) -> None:
    settings = dict(max_stages=2, target_macs_ratio=0.35, max_accuracy_drop=1.0)
    full = make_spiral(tmp_path / "a", **settings).run()

    # the same run, "killed" during stage 2: its report lists stage 1 only, stage_2/ is half written
    make_spiral(tmp_path / "b", **settings).run()
    run = tmp_path / "b" / "run"
    report = json.loads((run / "report.json").read_text())
    report["stages"] = report["stages"][:1]
    (run / "report.json").write_text(json.dumps(report))
    (run / "stage_2" / "model.pt").write_bytes(b"half a file")
    stage_1_bytes = (run / "stage_1" / "model.pt").read_bytes()

    resumed = make_spiral(tmp_path / "b", model=None, resume=True, **settings).run()
    assert [s.stage for s in resumed.stages] == [1, 2]
    assert (run / "stage_1" / "model.pt").read_bytes() == stage_1_bytes  # finished stages are never rewritten
    assert resumed.stages[0].top1 == full.stages[0].top1
    assert [s.macs for s in resumed.stages] == [s.macs for s in full.stages]  # same architectures
    assert abs(resumed.stages[1].top1 - full.stages[1].top1) <= 0.005
    assert (run / "stage_2" / "model.pt").read_bytes() != b"half a file"


def test_resuming_a_finished_run_trains_nothing(tmp_path) -> None:
    done = make_spiral(tmp_path, max_stages=1).run()
    again = make_spiral(tmp_path, model=None, max_stages=1, resume=True).run()
    assert again.stages == done.stages


def test_resume_refuses_other_settings_and_missing_runs(tmp_path) -> None:
    make_spiral(tmp_path, max_stages=1).run()
    with pytest.raises(SpiralConfigError, match=r"Cannot resume: 1 setting\(s\) differ .*`pruning.amount` recorded 0.25, now 0.5"):
        import functools

        from lightning_spiral import PruningCallback

        make_spiral(tmp_path, model=None, max_stages=1, resume=True,
                    pruning=functools.partial(PruningCallback, amount=0.5, verbose=0)).run()
    with pytest.raises(SpiralConfigError, match=r"`resume` must name an existing run directory, got .* \(no such folder\)"):
        make_spiral(tmp_path / "elsewhere", model=None, resume=True)


def test_discard_only_touches_unfinished_stage_folders(tmp_path) -> None:
    for name in ("stage_0", "stage_1", "stage_2", "stage_3", "stage_notes"):
        (tmp_path / name).mkdir()
    removed = discard_unfinished_stages(tmp_path, finished_stages=1)
    assert sorted(p.name for p in removed) == ["stage_2", "stage_3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage_0", "stage_1", "stage_notes"]


CLI_RUN = ["spiral.teacher_epochs=2", "spiral.stage_epochs=2", "spiral.max_stages=2", "spiral.target_macs_ratio=0.45",
           "spiral.max_accuracy_drop=1.0", "spiral.latency_repeats=2", "trainer.enable_progress_bar=false"]


def _cli(args: list[str], cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lightning_spiral", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_sigkill_during_stage_2_then_resume_matches_an_uninterrupted_run(tmp_path) -> None:
    reference = _cli([*CLI_RUN, f"hydra.run.dir={tmp_path / 'reference'}"], tmp_path)
    assert reference.wait(timeout=300) == 0, reference.stdout.read()[-3000:]

    run = tmp_path / "killed"
    victim = _cli([*CLI_RUN, f"hydra.run.dir={run}"], tmp_path)
    deadline = time.time() + 300
    while not (run / "stage_2" / "logs").exists() and time.time() < deadline:  # stage 2 has started training
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert len(json.loads((run / "report.json").read_text())["stages"]) == 1

    resumed = _cli([*CLI_RUN, f"resume={run}"], tmp_path)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()[-3000:]
    expected = json.loads((tmp_path / "reference" / "report.json").read_text())
    got = json.loads((run / "report.json").read_text())
    assert [s["macs"] for s in got["stages"]] == [s["macs"] for s in expected["stages"]]
    assert abs(got["final"]["top1"] - expected["final"]["top1"]) <= 0.005
