"""The ``lightning-spiral`` command as a user runs it: a subprocess with Hydra overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = [
    "spiral.teacher_epochs=2",
    "spiral.stage_epochs=1",
    "spiral.max_stages=2",
    "spiral.target_macs_ratio=0.45",
    "spiral.latency_repeats=2",
    "spiral.max_accuracy_drop=1.0",  # two epochs of teacher training: no rollback in this smoke run
    "trainer.enable_progress_bar=false",
]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "lightning_spiral", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_runs_a_two_stage_spiral_into_the_hydra_run_dir(tmp_path) -> None:
    result = _run([*TINY, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == [1, 2]
    # the default cubic schedule lands on the target in max_stages stages; no fixed amount per stage
    assert report["settings"]["spiral"]["schedule"] == "cubic" and report["settings"]["pruning"]["amount"] is None
    assert report["stages"][-1]["macs"] <= 0.45 * report["teacher"]["macs"] < report["stages"][0]["macs"]
    assert (tmp_path / "run" / "stage_2" / "model.pt").is_file()
    assert "Spiral report" in result.stdout


def test_cli_multirun_sweeps_the_teacher_mode(tmp_path) -> None:
    result = _run(["-m", *TINY, "spiral.max_stages=1", "spiral.target_macs_ratio=0.7", "spiral.teacher=previous,original",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    modes = sorted(json.loads(p.read_text())["settings"]["spiral"]["teacher"] for p in (tmp_path / "sweep").glob("*/report.json"))
    assert modes == ["original", "previous"]


def test_cli_bad_value_exits_with_one_readable_line(tmp_path) -> None:
    result = _run(["distill.temperature=0"], cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "lightning-spiral: error:" in line]
    assert lines == ["lightning-spiral: error: `temperature` must be a finite number > 0, got 0. Typical temperatures are 1-8. "
                     "A ScheduledTemperature or CurriculumTemperature module also works."]
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("report.json"))


SUBPROCESS_CASES = [
    (["foo=1"], "unknown key `foo`"),
    (["data=bogus"], "`data`='bogus' is not a config option"),
    (["seed=abc"], "`seed` must be an integer >= 0, got 'abc'."),
    (["trainer.precision=bogus"], "`trainer` is refused by Lightning: Precision 'bogus' is invalid."),
    (["spiral.optimizer.lr=-1"], "Invalid learning rate: -1"),
    (["+trainer.max_epochs=5"], "`trainer.max_epochs`=5 would be ignored"),
]


def test_bad_input_in_a_fresh_interpreter_exits_2_with_one_line(tmp_path) -> None:
    """The contract suite (tests/test_cli_contract.py) runs in-process; a sample of it as the shell runs it."""
    from concurrent.futures import ThreadPoolExecutor

    from cli_contract import assert_refused_in_one_line, run_subprocess

    def run(number: int):
        args, _ = SUBPROCESS_CASES[number]
        return run_subprocess([*args, f"hydra.run.dir={tmp_path / f'run_{number}'}"], cwd=tmp_path, timeout=120)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, range(len(SUBPROCESS_CASES))))
    for (_, fragment), result in zip(SUBPROCESS_CASES, results):
        assert_refused_in_one_line(result, fragment)
        assert result.seconds < 60
    assert not list(tmp_path.rglob("report.json")) and not list(tmp_path.rglob(".hydra"))


def test_cli_full_error_keeps_the_traceback(tmp_path) -> None:
    env_run = subprocess.run([sys.executable, "-m", "lightning_spiral", "pruning.amount=1.5"], cwd=tmp_path,
                             env={**os.environ, "HYDRA_FULL_ERROR": "1"}, capture_output=True, text=True, timeout=300)
    assert env_run.returncode != 0
    assert "Traceback" in env_run.stderr and "`amount` must be a number in (0, 1)" in env_run.stderr


@pytest.mark.slow
def test_cli_runs_under_ddp_on_two_cpu_processes(tmp_path) -> None:
    # taylor: gradient-based importance, averaged across ranks; a rank mismatch would raise PruningError
    result = _run([*TINY, "spiral.max_stages=1", "spiral.target_macs_ratio=0.7", "trainer=ddp_cpu", "pruning.importance=taylor",
                   "data.batch_size=32", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)  # 2 x 32: the same global batch
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert len(report["stages"]) == 1
    assert report["stages"][0]["macs"] < report["teacher"]["macs"]
    assert not list((tmp_path / "run").rglob("*.tmp"))
    # the same job in one process (global batch 64 in both): identical architectures, accuracy within
    # 10 points — the ranks see the data in another order, and two epochs of this smoke setting are noisy
    single = _run([*TINY, "spiral.max_stages=1", "spiral.target_macs_ratio=0.7", "pruning.importance=taylor",
                   f"hydra.run.dir={tmp_path / 'single'}"], cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    reference = json.loads((tmp_path / "single" / "report.json").read_text())
    assert [s["params"] for s in report["stages"]] == [s["params"] for s in reference["stages"]]
    assert abs(report["final"]["top1"] - reference["final"]["top1"]) <= 0.10


def test_the_command_releases_the_process_group_its_trainers_left(tmp_path) -> None:
    import torch.distributed as dist

    from lightning_spiral.cli import release_process_group

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    release_process_group()
    assert not dist.is_initialized()
    release_process_group()  # nothing to release: no error


def test_cli_runs_a_users_own_module_named_by_target(tmp_path) -> None:
    """A user package's LightningModule and network by `_target_`, judged on the module's own `val_acc`."""
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(tests)}
    args = ["--config-dir", str(tests / "user_project" / "conf"), "experiment=user_classifier", "spiral.latency_repeats=2",
            "trainer.enable_progress_bar=false", "spiral.verbose=0", f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run([sys.executable, "-m", "lightning_spiral", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["settings"]["module"]["_target_"] == "user_project.models.LitClassifier"
    assert report["settings"]["spiral"]["network"] == "backbone"
    assert [s["stage"] for s in report["stages"]] == [1, 2, 3]
    assert report["final"]["val_score"] == report["final"]["metrics"]["val_acc"]
    assert report["final"]["macs"] <= 0.3 * report["teacher"]["macs"]
