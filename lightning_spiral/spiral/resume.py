"""Resume a spiral run after a crash: keep every finished stage, discard the half-finished one.

A stage is finished once ``report.json`` lists it (the report is rewritten atomically after every
stage, after the stage's model file). Stage folders beyond the report belong to a stage that was
interrupted and are removed before the spiral continues with that stage from the start.
Resuming with settings that differ from the recorded ones is refused
(:meth:`~lightning_spiral.spiral.settings.RunSettings.check_resumable`): the stages would not form one
spiral. A run started with ``overwrite=True`` first clears the old run's outputs (:func:`clear_run`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lightning_spiral.deploy.stage import QUANTIZED_DIR
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.records import REPORT_JSON, REPORT_MARKDOWN, REPORT_PLOT, SpiralReport, read_report


def discard_unfinished_stages(output_dir: Path, finished_stages: int) -> list[Path]:
    """Remove ``stage_<k>`` folders with ``k > finished_stages``; return what was removed."""
    removed = []
    for path in sorted(output_dir.glob("stage_*")):
        number = path.name.removeprefix("stage_")
        if path.is_dir() and number.isdigit() and int(number) > finished_stages:
            shutil.rmtree(path)
            removed.append(path)
    return removed


def recorded_report(output_dir: Path) -> SpiralReport:
    """The report of the run to resume, refused in one line when it cannot be read."""
    try:
        return read_report(output_dir)
    except (OSError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
        raise SpiralConfigError(
            f"`resume`: {str(output_dir / REPORT_JSON)!r} cannot be read ({type(err).__name__}: {err}); "
            "the run cannot be resumed. Start a new run (or restore report.json from a backup)."
        ) from err


def clear_run(output_dir: Path) -> list[Path]:
    """Remove a previous run's stage folders and reports from ``output_dir`` (``overwrite=True``); return what went."""
    removed = [path for path in sorted(output_dir.iterdir()) if is_run_output(path)] if output_dir.is_dir() else []
    for path in removed:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return removed


def is_run_output(path: Path) -> bool:
    """A stage folder, the quantized stage's folder, TensorBoard logs or a report file of a spiral run."""
    if path.is_dir():
        number = path.name.removeprefix("stage_")
        return (path.name.startswith("stage_") and number.isdigit()) or path.name in (QUANTIZED_DIR, "tensorboard")
    return path.name in (REPORT_JSON, REPORT_MARKDOWN, REPORT_PLOT)


def is_finished(report: SpiralReport, target_macs_ratio: float, max_stages: int) -> bool:
    """Whether the recorded stages already end the spiral (rollback, target reached, or no stages left)."""
    if not report.stages:
        return False
    last = report.stages[-1]
    return not last.kept or last.macs <= target_macs_ratio * report.teacher.macs or len(report.stages) >= max_stages
