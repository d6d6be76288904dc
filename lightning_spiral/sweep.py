"""The report of a sweep: every run's final model in one table, with its Pareto-optimal configurations.

``lightning-spiral-report <multirun dir>`` reads the ``report.json`` of every run below the
directory (``lightning-spiral -m ...`` writes one per job, ``<dir>/<job number>/report.json``) with
:func:`~lightning_spiral.report.read_report`, and each run's Hydra overrides
(``.hydra/overrides.yaml``) as the name of its configuration. Each run is represented by its final
kept stage. A run is *Pareto-optimal* when no other run has at least its test top-1 at no more
cost (MACs, or batch-64 latency) and is strictly better in one of the two (:func:`pareto_front`).

It prints the table (rich) and writes into the directory, each atomically:

- ``sweep.json``: one record per run (overrides, final stage, ratios to its teacher, front flags);
- ``sweep.md``: the table, sorted by MACs, ``*`` marking the fronts;
- ``sweep.png``: top-1 against MACs and against batch-64 latency, each front drawn as a line.

Example:
    >>> pareto_front([(10.0, 0.90), (5.0, 0.85), (8.0, 0.80), (20.0, 0.90)])
    [True, True, False, False]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lightning_spiral.atomic import atomic_write_bytes, atomic_write_text
from lightning_spiral.errors import SpiralConfigError, SpiralError
from lightning_spiral.records import REPORT_JSON, StageResult, read_report
from lightning_spiral.report import format_count

SWEEP_JSON = "sweep.json"
SWEEP_MARKDOWN = "sweep.md"
SWEEP_PLOT = "sweep.png"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
EXIT_BAD_INPUT = 2

CostName = Literal["macs", "latency_ms_b64"]
_COLUMNS = ("run", "config", "stage", "top-1 %", "val %", "MACs", "MACs %", "b64 ms", "front MACs", "front b64")
_TEXT_COLUMNS = frozenset({"run", "config", "stage", "front MACs", "front b64"})


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Flag the points ``(cost, accuracy)`` that no other point dominates (lower cost, higher accuracy).

    ``q`` dominates ``p`` when ``q.cost <= p.cost`` and ``q.accuracy >= p.accuracy`` with at least
    one of the two strict; equal points do not dominate each other, so duplicates share the front.

    Example:
        >>> pareto_front([(1.0, 0.5), (1.0, 0.5), (2.0, 0.4)])
        [True, True, False]
        >>> pareto_front([])
        []
    """
    return [
        not any(
            cost_q <= cost and acc_q >= acc and (cost_q < cost or acc_q > acc) for cost_q, acc_q in points
        )
        for cost, acc in points
    ]


@dataclasses.dataclass
class SweepRun:
    """One run of a sweep, represented by its final kept stage.

    Args:
        name: the run directory relative to the sweep directory (Hydra's job number).
        overrides: the run's Hydra overrides, e.g. ``["spiral.max_stages=2", "pruning.amount=0.2"]``.
        shared: the overrides every run of the sweep has (left out of :attr:`config`).
        final: the run's final kept stage (its teacher when no stage was kept).
        teacher: the run's stage 0.
        front_macs: on the top-1 vs MACs Pareto front of the sweep.
        front_latency: on the top-1 vs batch-64 latency Pareto front of the sweep.
    """

    name: str
    overrides: list[str]
    final: StageResult
    teacher: StageResult
    shared: list[str] = dataclasses.field(default_factory=list)
    front_macs: bool = False
    front_latency: bool = False

    @property
    def config(self) -> str:
        """The overrides that set this run apart, as one line (``"-"`` when none do)."""
        return " ".join(item for item in self.overrides if item not in self.shared) or "-"

    def to_dict(self) -> dict[str, Any]:
        """Plain values: the final stage with its ratios to the run's teacher, the overrides and the flags."""
        return {
            "run": self.name,
            "overrides": list(self.overrides),
            "final": {**self.final.to_dict(), **self.final.ratios_to(self.teacher)},
            "teacher": self.teacher.to_dict(),
            "front_macs": self.front_macs,
            "front_latency": self.front_latency,
        }


def collect_runs(sweep_dir: str | os.PathLike) -> list[SweepRun]:
    """Every run with a ``report.json`` below ``sweep_dir``, sorted by MACs (the best top-1 first among equals), fronts marked.

    Raises:
        SpiralConfigError: ``sweep_dir`` is not a directory, or holds no ``report.json``.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise SpiralConfigError(f"`sweep_dir` must be an existing directory, got '{sweep_dir}' (not found).")
    report_files = sorted(sweep_dir.rglob(REPORT_JSON))
    if not report_files:
        raise SpiralConfigError(
            f"`sweep_dir` '{sweep_dir}' holds no {REPORT_JSON} in any run directory; "
            "pass the directory of a `lightning-spiral -m ...` multirun (hydra.sweep.dir)."
        )
    runs = [_read_run(sweep_dir, path.parent) for path in report_files]
    runs.sort(key=lambda run: (run.final.macs, -(run.final.top1 or 0.0), run.name))  # among equal MACs, the best first
    shared = [item for item in runs[0].overrides if all(item in run.overrides for run in runs[1:])] if len(runs) > 1 else []
    for run in runs:
        run.shared = shared
    for cost, flag in (("macs", "front_macs"), ("latency_ms_b64", "front_latency")):
        for run, on_front in zip(runs, pareto_front([_point(run, cost) for run in runs]), strict=True):
            setattr(run, flag, on_front)
    return runs


def render_markdown(runs: Sequence[SweepRun]) -> str:
    """The sweep table as markdown, sorted by MACs, ``*`` on Pareto-optimal runs."""
    shared = " ".join(runs[0].shared) if runs else ""
    lines = [
        "# Sweep report",
        "",
        "Each run is its final kept stage; `*`: Pareto-optimal (test top-1 against MACs / batch-64 latency).",
        "",
        *([f"Overrides of every run: `{shared}`", ""] if shared else []),
        "| " + " | ".join(_COLUMNS) + " |",
        "| " + " | ".join("---" if c in _TEXT_COLUMNS else "---:" for c in _COLUMNS) + " |",
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in _cells(run).values()) + " |" for run in runs),
    ]
    return "\n".join(lines) + "\n"


def render_table(runs: Sequence[SweepRun]) -> Table:
    """The sweep table for the terminal; runs on neither front are dimmed."""
    shared = " ".join(runs[0].shared) if runs else ""
    caption = "*: Pareto-optimal" + (f"\nOverrides of every run: {escape(shared)}" if shared else "")
    table = Table(title="Sweep report", caption=caption, box=box.SIMPLE_HEAD, collapse_padding=True)
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column in _TEXT_COLUMNS else "right", no_wrap=column != "config")
    for run in runs:
        style = None if run.front_macs or run.front_latency else "dim"
        table.add_row(*(escape(cell) for cell in _cells(run).values()), style=style)
    return table


def render_plot(runs: Sequence[SweepRun]) -> bytes:
    """PNG of every run's test top-1 against MACs and against batch-64 latency, fronts joined."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself to the figure; no pyplot, no global backend
    left, right = figure.subplots(1, 2)
    _draw_front(left, runs, lambda run: run.final.macs / 1e6, lambda run: run.front_macs, "MACs (millions)")
    _draw_front(
        right, runs, lambda run: run.final.latency_ms_b64, lambda run: run.front_latency, "batch-64 latency (ms, CPU)"
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def write_sweep_report(sweep_dir: str | os.PathLike, console: Console | None = None) -> list[SweepRun]:
    """Collect the runs of ``sweep_dir``, print the table and write ``sweep.json``, ``sweep.md``, ``sweep.png``.

    Example:
        >>> write_sweep_report("/no/such/multirun")
        Traceback (most recent call last):
            ...
        lightning_spiral.errors.SpiralConfigError: `sweep_dir` must be an existing directory, got '/no/such/multirun' (not found).
    """
    runs = collect_runs(sweep_dir)
    # Render everything first: a rendering error then leaves the previous files in place.
    text = json.dumps({"shared_overrides": runs[0].shared, "runs": [run.to_dict() for run in runs]}, indent=2) + "\n"
    markdown = render_markdown(runs)
    plot = render_plot(runs)
    sweep_dir = Path(sweep_dir)
    atomic_write_text(sweep_dir / SWEEP_JSON, text)
    atomic_write_text(sweep_dir / SWEEP_MARKDOWN, markdown)
    atomic_write_bytes(sweep_dir / SWEEP_PLOT, plot)
    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: rich would squeeze the table to 80 columns
            console = Console(width=160)
    console.print(render_table(runs))
    console.print(f"Wrote {SWEEP_MARKDOWN}, {SWEEP_JSON} and {SWEEP_PLOT} to {escape(str(sweep_dir))}")
    return runs


def main(argv: Sequence[str] | None = None) -> None:
    """The ``lightning-spiral-report`` command: ``lightning-spiral-report <multirun dir>``."""
    parser = argparse.ArgumentParser(
        prog="lightning-spiral-report",
        description="Collect the report.json of every run of a lightning-spiral multirun into one table "
        "with its Pareto-optimal configurations; writes sweep.md, sweep.json and sweep.png there.",
    )
    parser.add_argument("sweep_dir", help="the multirun directory (hydra.sweep.dir), e.g. multirun/2026-11-25/10-00-00")
    args = parser.parse_args(argv)
    try:
        write_sweep_report(args.sweep_dir)
    except SpiralError as err:
        sys.stderr.write(f"lightning-spiral-report: error: {err}\n")
        raise SystemExit(EXIT_BAD_INPUT) from None


def _read_run(sweep_dir: Path, run_dir: Path) -> SweepRun:
    report = read_report(run_dir)
    overrides_path = run_dir / OVERRIDES_FILE
    overrides = [str(item) for item in OmegaConf.load(overrides_path)] if overrides_path.is_file() else []
    name = run_dir.relative_to(sweep_dir).as_posix()
    return SweepRun(name=name if name != "." else run_dir.name, overrides=overrides, final=report.final, teacher=report.teacher)


def _point(run: SweepRun, cost: CostName) -> tuple[float, float]:
    return float(getattr(run.final, cost)), run.final.top1


def _cells(run: SweepRun) -> dict[str, str]:
    final = run.final
    values = (
        run.name,
        run.config,
        "teacher" if final.stage == 0 else str(final.stage),
        f"{100 * final.top1:.2f}",
        f"{100 * final.val_top1:.2f}",
        format_count(final.macs),
        f"{100 * final.macs / run.teacher.macs:.1f}" if run.teacher.macs else "–",
        f"{final.latency_ms_b64:.2f}",
        "*" if run.front_macs else "",
        "*" if run.front_latency else "",
    )
    return dict(zip(_COLUMNS, values, strict=True))


def _draw_front(
    axes: Axes, runs: Sequence[SweepRun], x_of: Callable[[SweepRun], float], on_front: Callable[[SweepRun], bool], xlabel: str
) -> None:
    """Every run as a dot labelled by its run name; the Pareto-optimal ones joined in order of cost."""
    axes.scatter([x_of(run) for run in runs], [100 * run.final.top1 for run in runs], color="C7", label="run", zorder=2)
    front = sorted((run for run in runs if on_front(run)), key=x_of)
    axes.plot([x_of(run) for run in front], [100 * run.final.top1 for run in front], "-o", color="C0",
              label="Pareto front", zorder=3)  # fmt: skip
    for run in runs:
        axes.annotate(run.name, (x_of(run), 100 * run.final.top1), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test top-1 (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)


if __name__ == "__main__":
    main()
