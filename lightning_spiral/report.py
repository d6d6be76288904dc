"""The forms of a spiral run's report: its JSON, markdown, terminal table and plot.

The records themselves (:class:`~lightning_spiral.records.SpiralReport`, ...) live in
:mod:`lightning_spiral.records`; this module renders them, for the run and for
``lightning-spiral-report`` alike. :func:`write_report` writes three files into the run
directory, each atomically:

- ``report.json``: every figure plus ratios to the teacher; :func:`read_report` reads it back
  (resume relies on it);
- ``report.md``: one table (top-1, Δ to the teacher, params, MACs, latency, speed-up, size), how
  the latencies were timed, and the quantized artifact's speed-up timed in the same rounds;
- ``spiral.png``: top-1 against MACs and against batch-64 latency along the spiral.

Accuracies are stored as fractions (0.78) and shown as percentages (78.00); Δ is in points.
Plots use ``matplotlib.figure.Figure`` with the Agg canvas directly, so the user's pyplot backend
is never touched.

Example:
    >>> format_count(43_800_000), format_bytes(2_400_000), format_score("val/top1", 0.912)
    ('43.8M', '2.4 MB', '91.20')
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lightning_spiral.atomic import atomic_write_bytes, atomic_write_text
from lightning_spiral.records import (
    REPORT_JSON,
    REPORT_MARKDOWN,
    REPORT_PLOT,
    QuantizedResult,
    SpiralReport,
    StageResult,
    format_score,
    monitor_key,
    quantized_timing,
    ratio,
    side_by_side_of,
    spiral_settings,
)
from lightning_spiral.report_timing import cuda_lines, quantized_line, speedup_cell, timed_speedup, timing_line

# Columns of the terminal and markdown tables; numbers are right-aligned.
_COLUMNS = (
    "stage", "kept", "top-1 %", "Δ pts", "val", "params", "MACs", "MACs %",
    "b1 ms", "b64 ms", "speedup b64", "size", "note",
)  # fmt: skip
_TEXT_COLUMNS = frozenset({"stage", "kept", "note"})


def write_report(report: SpiralReport, run_dir: str | os.PathLike) -> None:
    """Write ``report.json``, ``report.md`` and ``spiral.png`` into ``run_dir``, each atomically.

    Example:
        >>> import tempfile
        >>> t = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0,
        ...     latency_ms_b64=10.0, size_bytes=4096, model_path="stage_0/model.pt", kept=True,
        ...     amount=0.0, wall_s=100.0)
        >>> run_dir = Path(tempfile.mkdtemp())
        >>> write_report(SpiralReport(teacher=t), run_dir)
        >>> from lightning_spiral.records import read_report
        >>> read_report(run_dir).teacher == t
        True
    """
    run_dir = Path(run_dir)
    # Render everything first: a rendering error then leaves the previous files in place.
    text = json.dumps(report.to_dict(), indent=2) + "\n"
    markdown = render_markdown(report)
    plot = render_plot(report)
    atomic_write_text(run_dir / REPORT_JSON, text)
    atomic_write_text(run_dir / REPORT_MARKDOWN, markdown)
    atomic_write_bytes(run_dir / REPORT_PLOT, plot)


def table_rows(report: SpiralReport) -> list[list[str]]:
    """The formatted cells of the report table, teacher first, one row per stage, then the quantized model."""
    rows = [list(_cells(result, report).values()) for result in (report.teacher, *report.stages)]
    if report.quantized is not None:
        rows.append(list(_quantized_cells(report).values()))
    return rows


def summary_line(report: SpiralReport) -> str:
    """One sentence on the final model against the teacher.

    Example:
        >>> t = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0,
        ...     latency_ms_b64=10.0, size_bytes=4096, model_path="stage_0/model.pt", kept=True,
        ...     amount=0.0, wall_s=100.0)
        >>> summary_line(SpiralReport(teacher=t))
        'Final: teacher, top-1 80.00 % (+0.00 pts), 100.0 % of the MACs, ≈1.00× the batch-64 speed.'
    """
    final, key = report.final, monitor_key(report)
    cells = _cells(final, report)
    name = "teacher" if final.stage == 0 else f"stage {final.stage}"
    quality = (f"top-1 {cells['top-1 %']} % ({cells['Δ pts']} pts)" if final.top1 is not None
               else f"{key} {cells['val']} (teacher {format_score(key, report.teacher.val_score)})")
    return f"Final: {name}, {quality}, {cells['MACs %']} % of the MACs, {cells['speedup b64']} the batch-64 speed."


def render_markdown(report: SpiralReport) -> str:
    """The report as markdown: the table, the final line, then the machine and the settings."""
    lines = [
        "# Spiral report",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "| " + " | ".join("---" if c in _TEXT_COLUMNS else "---:" for c in _COLUMNS) + " |",
        *("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |" for row in table_rows(report)),
        "",
        summary_line(report),
        "",
        timing_line(report),
        "",
        *([line, ""] if (line := quantized_line(report)) else []),
        *(part for line in cuda_lines(report) for part in (line, "")),
        f"The `val` column is the monitored validation value, `{monitor_key(report)}`.",
        "",
        f"Machine: {_key_values(report.machine)}",
        "",
        f"Settings: {_key_values(spiral_settings(report))}, seed={report.settings.get('seed')} "
        "(every setting: `report.json`)",
    ]
    return "\n".join(lines) + "\n"


def render_table(report: SpiralReport) -> Table:
    """The report as a rich table, teacher first; rolled-back stages are dimmed.

    Notes go under the table, not in a column, so the figures fit a terminal about 100 wide.
    """
    results = (report.teacher, *report.stages)
    notes = [f"stage {result.stage}: {escape(result.note)}" for result in results if result.note]
    if report.quantized is not None:
        notes.append(f"{report.quantized.kind}: {escape(_quantized_cells(report)['note'])}")
    lines = (summary_line(report), timing_line(report), quantized_line(report), *cuda_lines(report), *notes)
    caption = "\n".join(line for line in lines if line)
    table = Table(title="Spiral report", caption=caption, box=box.SIMPLE_HEAD, collapse_padding=True)
    columns = [column for column in _COLUMNS if column != "note"]
    for column in columns:
        table.add_column(column, justify="left" if column in _TEXT_COLUMNS else "right", no_wrap=True)
    for result in results:
        cells = _cells(result, report)
        table.add_row(*(cells[column] for column in columns), style=None if result.kept else "dim")
    if report.quantized is not None:
        cells = _quantized_cells(report)
        table.add_row(*(cells[column] for column in columns), style="cyan")
    return table


def print_report(report: SpiralReport, console: Console | None = None) -> None:
    """Print :func:`render_table` to ``console`` (a new one by default); rank zero is the caller's job."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: rich would squeeze the table to 80 columns
            console = Console(width=140)
    console.print(render_table(report))


def render_plot(report: SpiralReport) -> bytes:
    """PNG of top-1 (%) against MACs and against batch-64 latency along the spiral."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself to the figure; no pyplot, no global backend
    left, right = figure.subplots(1, 2)
    _draw_panel(left, report, lambda result: result.macs / 1e6, "MACs (millions)")
    _draw_panel(right, report, lambda result: plotted_latency(report, result), "batch-64 latency (ms, CPU)")
    _draw_latency_spread(right, report)
    if report.quantized is not None:  # same MACs as the final model; its latency is its own runtime's
        _mark_quantized(left, report.quantized, report.final.macs / 1e6)
        timed = quantized_timing(report)
        if timed is not None:
            _mark_quantized(right, report.quantized, timed["latency_ms_b64"])
            _spread_bar(right, timed, report.quantized.top1, color="C2")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def plotted_latency(report: SpiralReport, result: StageResult) -> float:
    """A stage's batch-64 latency: side by side when timed so, else its own provisional figure."""
    timed = side_by_side_of(report, result)
    return result.latency_ms_b64 if timed is None else timed["latency_ms_b64"]


def _draw_latency_spread(axes: Axes, report: SpiralReport) -> None:
    """Error bars: each side-by-side latency's min–max over the timing rounds."""
    for result in (report.teacher, *report.stages):
        timed = side_by_side_of(report, result)
        if timed is not None and result.top1 is not None:
            _spread_bar(axes, timed, result.top1, color="C0")


def _spread_bar(axes: Axes, timed: dict[str, Any], top1: float, color: str) -> None:
    """One horizontal error bar from the batch-64 latency's min to its max over the rounds."""
    low, high = timed["latency_ms_b64_range"]
    middle = timed["latency_ms_b64"]
    axes.errorbar(middle, 100 * top1, xerr=[[middle - low], [high - middle]], fmt="none", ecolor=color, alpha=0.6,
                  capsize=3, zorder=1)


def format_count(value: float) -> str:
    """``1234567`` → ``'1.2M'``, ``438000`` → ``'438K'`` (steps of 1000: K, M, G).

    Example:
        >>> format_count(41_000_000), format_count(950)
        ('41.0M', '950')
    """
    return _scaled(value, ("", "K", "M", "G"))


def format_bytes(value: float) -> str:
    """``1_900_000`` → ``'1.9 MB'`` (decimal units: kB, MB, GB).

    Example:
        >>> format_bytes(1_900_000), format_bytes(512)
        ('1.9 MB', '512 B')
    """
    return _scaled(value, (" B", " kB", " MB", " GB"))


def _cells(result: StageResult, report: SpiralReport) -> dict[str, str]:
    """One table row, keyed by column name (the ``val`` column shows the monitored value)."""
    teacher, key = report.teacher, monitor_key(report)
    macs_ratio = ratio(result.macs, teacher.macs)
    timed = side_by_side_of(report, result) or {"latency_ms_b1": result.latency_ms_b1, "latency_ms_b64": result.latency_ms_b64}
    values = (
        "teacher" if result.stage == 0 else str(result.stage),
        "yes" if result.kept else "no",
        "–" if result.top1 is None else f"{100 * result.top1:.2f}",
        "–" if result.top1 is None or teacher.top1 is None else f"{100 * (result.top1 - teacher.top1):+.2f}",
        format_score(key, result.val_score),
        format_count(result.params),
        format_count(result.macs),
        "–" if macs_ratio is None else f"{100 * macs_ratio:.1f}",
        f"{timed['latency_ms_b1']:.2f}",
        f"{timed['latency_ms_b64']:.2f}",
        speedup_cell(report, result),
        format_bytes(result.size_bytes),
        result.note,
    )
    return dict(zip(_COLUMNS, values, strict=True))


def _quantized_cells(report: SpiralReport) -> dict[str, str]:
    """The table row of the quantized model: its kind as the stage, figures from its serving runtime.

    Its latencies and speed-up are those of the side-by-side timing; ``–`` until it ran.
    """
    result, teacher, timed = report.quantized, report.teacher, quantized_timing(report)
    cells = dict.fromkeys(_COLUMNS, "–")
    cells.update({
        "stage": result.kind,
        "top-1 %": f"{100 * result.top1:.2f}",
        "Δ pts": f"{100 * (result.top1 - teacher.top1):+.2f}",
        "val": f"{100 * result.val_top1:.2f}",
        "size": format_bytes(result.size_bytes),
        "note": f"{result.runtime}: {result.note}",
    })
    if timed is not None:
        cells.update({"b1 ms": f"{timed['latency_ms_b1']:.2f}", "b64 ms": f"{timed['latency_ms_b64']:.2f}",
                      "speedup b64": timed_speedup(timed)})
    return cells


def _mark_quantized(axes: Axes, result: QuantizedResult, x: float) -> None:
    axes.scatter(x, 100 * result.top1, marker="D", s=70, color="C2", label=f"{result.kind} ({result.runtime})", zorder=5)
    axes.legend(fontsize=8)


def _draw_panel(axes: Axes, report: SpiralReport, x_of: Callable[[StageResult], float], xlabel: str) -> None:
    """Kept stages joined in order from the teacher; each rolled-back attempt dotted from its start."""
    teacher = report.teacher
    by_top1 = teacher.top1 is not None  # else the monitored validation value, e.g. a loss

    def value(result: StageResult) -> float | None:
        return result.top1 if by_top1 else result.val_score

    def point(result: StageResult) -> tuple[float, float]:
        return x_of(result), 100 * value(result) if by_top1 else value(result)

    path = [teacher, *(result for result in report.stages if result.kept)]
    axes.plot(*zip(*map(point, path)), "-o", color="C0", label="kept stage", zorder=2)
    rolled_back = [result for result in report.stages if not result.kept and value(result) is not None]  # failed: no value
    for result in rolled_back:
        start = _last_kept_before(report, result.stage)
        axes.plot(*zip(point(start), point(result)), ":", color="C3", zorder=1)
    if rolled_back:
        axes.scatter(*zip(*map(point, rolled_back)), marker="x", s=60, color="C3", label="rolled back", zorder=3)
    axes.scatter(*point(teacher), marker="*", s=220, color="C1", label="teacher", zorder=4)
    if report.final is not teacher:
        axes.scatter(*point(report.final), s=160, facecolors="none", edgecolors="C2", linewidths=2, label="final",
                     zorder=5)
    for result in (teacher, *path[1:], *rolled_back):
        axes.annotate(str(result.stage), point(result), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test top-1 (%)" if by_top1 else f"validation {monitor_key(report)}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)


def _last_kept_before(report: SpiralReport, stage: int) -> StageResult:
    """The stage a later stage started from: the last kept one before it, or the teacher."""
    kept = [result for result in report.stages if result.kept and result.stage < stage]
    return kept[-1] if kept else report.teacher


def _scaled(value: float, units: tuple[str, ...]) -> str:
    exponent = 0
    while abs(round(value, 1)) >= 1000 and exponent < len(units) - 1:
        value /= 1000
        exponent += 1
    # One decimal below 100 of a unit (1.2M, 41.0M), none above (438K) or for plain counts (950).
    digits = 1 if exponent > 0 and abs(value) < 100 else 0
    return f"{value:.{digits}f}{units[exponent]}"


def _markdown_cell(text: str) -> str:
    """A cell that cannot break the table: pipes escaped, line breaks turned into spaces."""
    return " ".join(text.replace("|", "\\|").splitlines())


def _key_values(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items()) or "–"
