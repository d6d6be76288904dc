"""Tests of lightning_spiral.sweep: the Pareto front, collecting runs, the written files, the command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from omegaconf import OmegaConf
from rich.console import Console

from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.records import SpiralReport, StageResult
from lightning_spiral.report import write_report
from lightning_spiral.sweep import (
    SWEEP_JSON,
    SWEEP_MARKDOWN,
    SWEEP_PLOT,
    collect_runs,
    main,
    pareto_front,
    write_sweep_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ pareto_front
def test_pareto_front_keeps_the_undominated_points() -> None:
    #            cheap+poor   dominated   best        costly, no better
    points = [(1.0, 0.60), (2.0, 0.55), (3.0, 0.90), (4.0, 0.90)]
    assert pareto_front(points) == [True, False, True, False]


def test_pareto_front_duplicates_share_the_front_and_one_point_is_optimal() -> None:
    assert pareto_front([(2.0, 0.8), (2.0, 0.8), (2.0, 0.7)]) == [True, True, False]
    assert pareto_front([(5.0, 0.1)]) == [True]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=12))
def test_pareto_front_matches_its_definition(points: list[tuple[int, int]]) -> None:
    flags = pareto_front(points)
    front = [p for p, on in zip(points, flags) if on]
    assert front, "a non-empty set always has an optimal point"
    for point, on in zip(points, flags):
        dominated = any(q[0] <= point[0] and q[1] >= point[1] and q != point for q in points)
        assert on == (not dominated)
    # along the front, higher cost buys strictly higher accuracy
    ordered = sorted(set(front))
    assert all(a[1] < b[1] for a, b in zip(ordered, ordered[1:]))


# ------------------------------------------------------------------------ collecting runs
def _result(stage: int, top1: float, macs: int, latency_ms_b64: float, kept: bool = True) -> StageResult:
    return StageResult(stage=stage, top1=top1, val_top1=top1, params=macs // 10, macs=macs, latency_ms_b1=1.0,
                       latency_ms_b64=latency_ms_b64, size_bytes=100, model_path=f"stage_{stage}/model.pt", kept=kept,
                       amount=0.0 if stage == 0 else 0.3, wall_s=1.0)


def _write_run(sweep_dir: Path, name: str, overrides: list[str], stages: list[StageResult]) -> None:
    run_dir = sweep_dir / name
    write_report(SpiralReport(teacher=_result(0, 0.95, 1000, 40.0), stages=stages), run_dir)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in ["spiral.max_stages=2", *overrides]))


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    _write_run(tmp_path, "0", ["pruning.amount=0.2"], [_result(1, 0.94, 640, 30.0)])
    # final kept stage is 1: the rolled-back stage 2 must not represent the run
    _write_run(tmp_path, "1", ["pruning.amount=0.4"], [_result(1, 0.90, 360, 25.0), _result(2, 0.50, 100, 5.0, kept=False)])
    _write_run(tmp_path, "2", ["pruning.amount=0.3"], [_result(1, 0.90, 490, 20.0)])  # same top-1 as run 1: dominated on MACs, dominates on latency
    _write_run(tmp_path, "3", ["pruning.amount=0.1"], [_result(1, 0.93, 810, 35.0)])  # dominated on both
    return tmp_path


def test_collect_runs_sorts_by_macs_and_marks_both_fronts(sweep_dir: Path) -> None:
    runs = collect_runs(sweep_dir)
    assert [run.name for run in runs] == ["1", "2", "0", "3"]
    assert [run.final.stage for run in runs] == [1, 1, 1, 1]
    assert [run.config for run in runs] == ["pruning.amount=0.4", "pruning.amount=0.3", "pruning.amount=0.2", "pruning.amount=0.1"]
    assert runs[0].shared == ["spiral.max_stages=2"] and runs[0].overrides == ["spiral.max_stages=2", "pruning.amount=0.4"]
    assert [run.front_macs for run in runs] == [True, False, True, False]
    assert [run.front_latency for run in runs] == [False, True, True, False]


def test_write_sweep_report_writes_json_markdown_and_png(sweep_dir: Path) -> None:
    console = Console(file=io.StringIO(), width=160)
    write_sweep_report(sweep_dir, console=console)
    data = json.loads((sweep_dir / SWEEP_JSON).read_text())
    assert [run["run"] for run in data["runs"]] == ["1", "2", "0", "3"]
    assert data["runs"][0]["final"]["macs_ratio"] == pytest.approx(0.36)
    assert data["runs"][0]["overrides"] == ["spiral.max_stages=2", "pruning.amount=0.4"]
    assert data["shared_overrides"] == ["spiral.max_stages=2"]
    markdown = (sweep_dir / SWEEP_MARKDOWN).read_text()
    assert "| 1 | pruning.amount=0.4 | 1 | 90.00 | 90.00 | 360 | 36.0 | 25.00 | * |  |" in markdown
    assert (sweep_dir / SWEEP_PLOT).read_bytes().startswith(PNG_MAGIC)
    assert "Sweep report" in console.file.getvalue()
    assert not list(sweep_dir.glob("*.tmp")) and not list(sweep_dir.glob(".*.tmp"))


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpiralConfigError, match=r"`sweep_dir` must be an existing directory, got '.*nowhere' \(not found\)"):
        collect_runs(tmp_path / "nowhere")


def test_directory_without_reports_is_named(tmp_path: Path) -> None:
    (tmp_path / "0").mkdir()
    with pytest.raises(SpiralConfigError, match=rf"`sweep_dir` '{tmp_path}' holds no report.json in any run directory"):
        collect_runs(tmp_path)


def test_command_turns_errors_into_one_line_and_exit_status_2(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"lightning-spiral-report: error: `sweep_dir` '{tmp_path}' holds no report.json")


# --------------------------------------------------------------------- a real multirun on digits
TINY = [  # a smoke setting: checks the plumbing, not the accuracy
    "+data.train_subset=400",  # not in conf/data/digits.yaml: added
    "spiral.teacher_epochs=1",
    "spiral.stage_epochs=1",
    "spiral.latency_repeats=2",
    "spiral.max_accuracy_drop=1.0",
    "trainer.enable_progress_bar=false",
]
# one stage of amount 0.2 or 0.4 reaches it; sweeping the amount needs the constant schedule
ONE_STAGE = ["spiral.schedule=constant", "spiral.max_stages=1", "spiral.target_macs_ratio=0.7"]


def _console_script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@pytest.mark.slow
def test_four_run_multirun_on_digits_gives_a_sweep_report_with_a_front(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(
        [_console_script("lightning-spiral"), "-m", *TINY, *ONE_STAGE, "pruning.amount=0.2,0.4", "distill.temperature=2,4",
         f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = subprocess.run([_console_script("lightning-spiral-report"), str(sweep)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Sweep report" in report.stdout
    runs = json.loads((sweep / SWEEP_JSON).read_text())["runs"]
    shared = json.loads((sweep / SWEEP_JSON).read_text())["shared_overrides"]
    assert [item.lower() for item in shared] == [item.lower() for item in [*TINY, *ONE_STAGE]]  # Hydra writes False
    assert sorted(" ".join(item for item in run["overrides"] if item not in shared) for run in runs) == [
        "pruning.amount=0.2 distill.temperature=2", "pruning.amount=0.2 distill.temperature=4",
        "pruning.amount=0.4 distill.temperature=2", "pruning.amount=0.4 distill.temperature=4",
    ]  # fmt: skip
    macs = [run["final"]["macs"] for run in runs]
    assert macs == sorted(macs)
    # the front, recomputed from the runs' own report.json files
    points = [(run["final"]["macs"], run["final"]["top1"]) for run in runs]
    assert [run["front_macs"] for run in runs] == pareto_front(points)
    assert runs[0]["front_macs"], "the cheapest run (with the best top-1 among equals) is always optimal"
    assert (sweep / SWEEP_PLOT).read_bytes().startswith(PNG_MAGIC)
    assert "| pruning.amount=0.4 distill.temperature=2 |" in (sweep / SWEEP_MARKDOWN).read_text()


@pytest.mark.slow
def test_optuna_sweeper_runs_three_trials_on_digits(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "optuna"
    result = subprocess.run(
        [_console_script("lightning-spiral"), "hparams_search=optuna", *TINY, "macs_budget=0.6", "hydra.sweeper.n_trials=3",
         "hydra.sweeper.sampler.n_startup_trials=2",
         f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env={**os.environ, "HYDRA_FULL_ERROR": "1"}, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    reports = sorted(sweep.glob("*/report.json"))
    assert len(reports) == 3
    best = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    assert set(best["best_params"]) == {"pruning.amount", "distill.temperature", "distill.alpha"}
    # the best value is the best trial's objective, recomputed from the reports (objective.py's rule)
    finals = [json.loads(path.read_text())["final"] for path in reports]
    scores = [final["val_top1"] if final["macs_ratio"] <= 0.6 else 0.6 - final["macs_ratio"] for final in finals]
    assert best["best_value"] == pytest.approx(max(scores))
