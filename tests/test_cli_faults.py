"""Resume refusals, broken run folders and faults during training, through the real entry point.

Resume: every setting that shapes a run is in the record, so changing any of them is refused by
name, before any work, and the run is left byte-identical. Faults: an unreadable ``report.json``,
a missing folder, a read-only or full disk, an error inside training (exit 1, traceback kept in
``cli.log``), and ``overwrite=true`` clearing the old run's stage folders.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from cli_contract import TINY_RUN, assert_refused_in_one_line, run_cli, snapshot

from lightning_spiral.spiral.settings import RunSettings


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished one-stage run that every resume below is measured against."""
    run = tmp_path_factory.mktemp("resume") / "run"
    result = run_cli([*TINY_RUN, f"hydra.run.dir={run}"])
    assert result.code == 0, result.stderr[-3000:]
    return run


CHANGED_SETTINGS = [
    ("pruning.round_to=8", "`pruning.round_to` recorded None, now 8"),
    ("pruning.global_pruning=true", "`pruning.global_pruning` recorded False, now True"),
    ("pruning.importance=l2", "`pruning.importance` recorded 'l1', now 'l2'"),
    ("spiral.optimizer.lr=0.5", "`optimizer.lr` recorded 0.05, now 0.5"),
    ("spiral.optimizer.weight_decay=0", "`optimizer.weight_decay`"),
    ("spiral.scheduler=null", "`scheduler._target_` recorded 'torch.optim.lr_scheduler.CosineAnnealingLR', now '<absent>'"),
    ("data.batch_size=32", "`data.batch_size` recorded 64, now 32"),
    ("data.val_fraction=0.2", "`data.val_fraction` recorded 0.1, now 0.2"),
    ("seed=1", "`seed` recorded 0, now 1"),
    ("distill.temperature=2", "`distill.temperature` recorded 4.0, now 2.0"),
    ("distill=kd_at", "`distill._target_` recorded 'lightning_spiral.distill.kd.KDLoss', now 'lightning_spiral.distill.combine.WeightedSum'"),
    ("spiral.teacher=previous", "`spiral.teacher` recorded 'original', now 'previous'"),
    ("spiral.target_macs_ratio=0.2", "`spiral.target_macs_ratio` recorded 0.3, now 0.2"),
    ("spiral.stage_epochs=2", "`spiral.stage_epochs` recorded [1], now [2]"),
    ("spiral.distill_weight=0.5", "`spiral.distill_weight` recorded 1.0, now 0.5"),
    ("spiral.monitor={key:val/top1,mode:max,max_drop:0.1}", "`spiral.monitor.max_drop` recorded 0.02, now 0.1"),
    ("spiral.latency_repeats=3", "`spiral.latency_repeats` recorded 2, now 3"),
    ("trainer.precision=bf16-mixed", "`trainer.precision` recorded '32-true', now 'bf16-mixed'"),
    ("+trainer.gradient_clip_val=1.0", "`trainer.gradient_clip_val` recorded None, now 1.0"),
    ("model=resnet20", "`model._target_` recorded 'lightning_spiral.models.small_cnn.SmallCNN'"),
]


@pytest.mark.parametrize(("override", "fragment"), CHANGED_SETTINGS, ids=[o for o, _ in CHANGED_SETTINGS])
def test_resume_refuses_a_changed_setting_by_name(override: str, fragment: str, finished_run: Path) -> None:
    before = snapshot(finished_run)
    result = run_cli([*TINY_RUN, override, f"resume={finished_run}"])
    assert_refused_in_one_line(result, "Cannot resume:")
    assert fragment in result.error_lines[0]
    assert snapshot(finished_run) == before


def test_resume_with_the_same_settings_is_accepted_and_leaves_a_finished_run_as_it_was(finished_run: Path) -> None:
    before = {name: digest for name, digest in snapshot(finished_run).items() if name.startswith("stage_")}
    result = run_cli([*TINY_RUN, f"resume={finished_run}"])
    assert result.code == 0, result.stderr[-2000:]
    assert {name: digest for name, digest in snapshot(finished_run).items() if name.startswith("stage_")} == before


def test_every_key_of_the_record_is_compared(finished_run: Path) -> None:
    """Change each recorded value in turn: the refusal names exactly that key."""
    from lightning_spiral.spiral.describe import flatten

    recorded = json.loads((finished_run / "report.json").read_text())["settings"]
    current = RunSettings(recorded)
    keys = sorted(flatten(recorded))
    assert len(keys) > 60 and {"pruning.round_to", "optimizer.lr", "data.batch_size", "distill.temperature"} <= set(keys)
    for key in keys:
        changed = json.loads(json.dumps(recorded))
        node = changed
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = ["changed", node[leaf]]
        with pytest.raises(Exception, match=f"1 setting\\(s\\) differ .*`{key}` recorded"):
            current.check_resumable(changed)


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "missing"])
def test_resume_of_a_damaged_run_is_refused_in_one_line(damage: str, finished_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    report = run / "report.json"
    if damage == "corrupt":
        report.write_text("{ not json")
    elif damage == "truncated":
        report.write_text(report.read_text()[:200])
    else:
        report.unlink()
    before = snapshot(run)
    result = run_cli([*TINY_RUN, f"resume={run}"])
    expected = "has none" if damage == "missing" else "report.json' cannot be read"
    assert_refused_in_one_line(result, expected)
    assert snapshot(run) == before


def test_resume_of_a_missing_folder_says_so(tmp_path: Path) -> None:
    result = run_cli([*TINY_RUN, f"resume={tmp_path / 'nowhere'}"])
    assert_refused_in_one_line(result, f"`resume` must name an existing run directory, got '{tmp_path / 'nowhere'}' (no such folder).")
    assert not (tmp_path / "nowhere").exists()


def test_a_read_only_run_folder_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning_spiral.spiral.validation as validation

    monkeypatch.setattr(validation.os, "access", lambda path, mode: False)  # as a non-root user on a read-only folder
    result = run_cli([*TINY_RUN, f"hydra.run.dir={tmp_path / 'run'}"])
    assert_refused_in_one_line(result, "cannot be written")
    assert not (tmp_path / "run" / "report.json").exists()


def test_a_full_disk_during_training_exits_1_with_one_line_and_keeps_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightning_spiral.report as report_module

    def full_disk(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(report_module, "atomic_write_text", full_disk)
    result = run_cli([*TINY_RUN, f"hydra.run.dir={tmp_path / 'run'}"])
    assert_refused_in_one_line(result, "no space left on the device", code=1)
    log = (tmp_path / "run" / "cli.log").read_text()
    assert "Traceback" in log and "No space left on device" in log


def test_overwrite_with_fewer_stages_clears_the_old_stage_folders(tmp_path: Path) -> None:
    run = tmp_path / "run"
    two = [override for override in TINY_RUN if not override.startswith("spiral.max_stages")]
    assert run_cli([*two, "spiral.max_stages=2", f"hydra.run.dir={run}"]).code == 0
    assert (run / "stage_2" / "model.pt").is_file()
    result = run_cli([*TINY_RUN, "spiral.overwrite=true", f"hydra.run.dir={run}"])
    assert result.code == 0, result.stderr[-2000:]
    assert not (run / "stage_2").exists()
    assert [stage["stage"] for stage in json.loads((run / "report.json").read_text())["stages"]] == [1]


def test_overwrite_into_a_folder_that_does_not_exist_yet(tmp_path: Path) -> None:
    from lightning_spiral.spiral.resume import clear_run

    assert clear_run(tmp_path / "new") == []
