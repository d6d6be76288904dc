"""Resume a spiral run after a crash: keep every finished stage, discard the half-finished one.

A stage is finished once ``report.json`` lists it (the report is rewritten atomically after every
stage, after the stage's model file). Stage folders beyond the report belong to a stage that was
interrupted and are removed before the spiral continues with that stage from the start.
Resuming with settings that differ from the recorded ones is refused: the stages would not form
one spiral.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.report import SpiralReport


def discard_unfinished_stages(output_dir: Path, finished_stages: int) -> list[Path]:
    """Remove ``stage_<k>`` folders with ``k > finished_stages``; return what was removed."""
    removed = []
    for path in sorted(output_dir.glob("stage_*")):
        number = path.name.removeprefix("stage_")
        if path.is_dir() and number.isdigit() and int(number) > finished_stages:
            shutil.rmtree(path)
            removed.append(path)
    return removed


def check_same_settings(recorded: dict[str, Any], current: dict[str, Any]) -> None:
    """Raise if a setting recorded in the run differs from the one given now."""
    differing = {key: (recorded[key], current[key]) for key in current if key in recorded and recorded[key] != current[key]}
    if differing:
        shown = ", ".join(f"`{key}` recorded {old!r}, now {new!r}" for key, (old, new) in differing.items())
        raise SpiralConfigError(f"Cannot resume: the settings differ from the run being resumed ({shown}). "
                                "Resume with the same settings, or start a new run.")


def is_finished(report: SpiralReport, target_macs_ratio: float, max_stages: int) -> bool:
    """Whether the recorded stages already end the spiral (rollback, target reached, or no stages left)."""
    if not report.stages:
        return False
    last = report.stages[-1]
    return not last.kept or last.macs <= target_macs_ratio * report.teacher.macs or len(report.stages) >= max_stages
