"""A CPU hog on one of the cores must not move the report's final speed-up by more than 15%."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_contract import run_cli

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_the_final_speedup_beside_a_cpu_hog_is_within_15_percent_of_the_idle_figure(tmp_path) -> None:
    run = tmp_path / "run"
    result = run_cli(["spiral.teacher_epochs=2", "spiral.max_stages=2", "spiral.stage_epochs=1", "spiral.verbose=0",
                      "trainer.enable_progress_bar=false", f"hydra.run.dir={run}"])
    assert result.code == 0, result.stderr[-3000:]
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import busy_machine
    finally:
        sys.path.remove(str(BENCHMARKS))
    figures = busy_machine.main(["--run", str(run), "--sessions", "3", "--rounds", "5", "--repeats", "20",
                                 "--out", str(tmp_path / "busy.json")])
    assert 0.85 <= figures["busy_over_idle"] <= 1.15, figures
