"""The report of one spiral run: a record per stage, and its JSON, markdown, terminal and plot forms.

A :class:`SpiralReport` holds the teacher (stage 0), every later stage — kept or rolled back — the
run's settings and the machine it was measured on. :func:`write_report` writes three files into the
run directory, each atomically:

- ``report.json``: every figure plus ratios to the teacher; :func:`read_report` reads it back
  (resume relies on it);
- ``report.md``: one table (top-1, Δ to the teacher, params, MACs, latency, speed-up, size);
- ``spiral.png``: top-1 against MACs and against batch-64 latency along the spiral.

Accuracies are stored as fractions (0.78) and shown as percentages (78.00); Δ is in points.
Plots use ``matplotlib.figure.Figure`` with the Agg canvas directly, so the user's pyplot backend
is never touched.

Example:
    >>> teacher = StageResult(stage=0, top1=0.78, val_top1=0.79, params=590_000, macs=43_800_000,
    ...     latency_ms_b1=1.3, latency_ms_b64=40.0, size_bytes=2_400_000, model_path="stage_0/model.pt",
    ...     kept=True, amount=0.0, wall_s=470.0)
    >>> student = StageResult(stage=1, top1=0.765, val_top1=0.77, params=150_000, macs=8_800_000,
    ...     latency_ms_b1=0.6, latency_ms_b64=15.0, size_bytes=620_000, model_path="stage_1/model.pt",
    ...     kept=True, amount=0.5, wall_s=125.0)
    >>> report = SpiralReport(teacher=teacher, stages=[student])
    >>> report.final.stage, round(report.to_dict()["final"]["macs_ratio"], 3)
    (1, 0.201)
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import version
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
from lightning_spiral.deploy.result import QuantizedResult
from lightning_spiral.checks import check_int, check_interval
from lightning_spiral.errors import SpiralConfigError

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
REPORT_PLOT = "spiral.png"

# Columns of the terminal and markdown tables; numbers are right-aligned.
_COLUMNS = (
    "stage", "kept", "top-1 %", "Δ pts", "val", "params", "MACs", "MACs %",
    "b1 ms", "b64 ms", "speedup b64", "size", "note",
)  # fmt: skip
_TEXT_COLUMNS = frozenset({"stage", "kept", "note"})


@dataclasses.dataclass
class StageResult:
    """What one stage of the spiral produced, as measured after its training.

    Args:
        stage: stage number; 0 is the teacher.
        top1: test top-1 accuracy as a fraction in [0, 1] (``val/top1`` and ``test/top1`` are what
            :class:`~lightning_spiral.SpiralModule` logs); ``None`` when the module logs no top-1.
        val_top1: validation top-1 accuracy as a fraction in [0, 1], or ``None``.
        params: number of parameters.
        macs: multiply-accumulates of one sample's forward pass.
        latency_ms_b1: median CPU latency at batch size 1, milliseconds.
        latency_ms_b64: median CPU latency at batch size 64, milliseconds.
        size_bytes: size of the saved model file.
        model_path: the saved model, relative to the run directory.
        kept: whether the stage was kept (``False``: rolled back).
        amount: fraction of channels pruned in this stage, in [0, 1); 0 for the teacher.
        wall_s: wall time of the stage's training, seconds.
        note: free text, e.g. why the stage was rolled back.
        top5: test top-5 accuracy as a fraction, when measured.
        val_score: the monitored validation value that judged the stage (default: ``val_top1``).
        metrics: everything the module logged in validation and test, by key.

    Example:
        >>> r = StageResult(stage=1, top1=0.75, val_top1=0.76, params=10, macs=100, latency_ms_b1=0.5,
        ...     latency_ms_b64=9.0, size_bytes=2048, model_path="stage_1/model.pt", kept=True,
        ...     amount=0.3, wall_s=60.0)
        >>> StageResult.from_dict(r.to_dict()) == r
        True
    """

    stage: int
    top1: float | None
    val_top1: float | None
    params: int
    macs: int
    latency_ms_b1: float
    latency_ms_b64: float
    size_bytes: int
    model_path: str
    kept: bool
    amount: float
    wall_s: float
    note: str = ""
    top5: float | None = None
    val_score: float | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.val_score is None:
            self.val_score = self.val_top1
        check_int("stage", self.stage, 0, hint="0 is the teacher.")
        for name in ("top1", "val_top1", "top5"):
            check_interval(name, getattr(self, name), "[0, 1]", none_ok=True,
                           hint="Pass accuracies as fractions (0.78), not percentages (78).")
        check_interval("amount", self.amount, "[0, 1)", hint="The channel fraction pruned; 0 for the teacher.")

    def ratios_to(self, reference: StageResult) -> dict[str, float | None]:
        """MACs, params and latency of this stage divided by ``reference``'s (``None`` if that is 0)."""
        return {
            "macs_ratio": _ratio(self.macs, reference.macs),
            "params_ratio": _ratio(self.params, reference.params),
            "latency_ratio_b1": _ratio(self.latency_ms_b1, reference.latency_ms_b1),
            "latency_ratio_b64": _ratio(self.latency_ms_b64, reference.latency_ms_b64),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageResult:
        """Inverse of :meth:`to_dict`; keys that are not fields (e.g. ratios) are ignored."""
        fields = dataclasses.fields(cls)
        missing = sorted(f.name for f in fields if f.default is dataclasses.MISSING and f.name not in data)
        if missing:
            raise SpiralConfigError(f"`data` of a stage result lacks the keys {missing}; found {sorted(data)}.")
        return cls(**{f.name: data[f.name] for f in fields if f.name in data})


@dataclasses.dataclass
class SpiralReport:
    """The teacher, every later stage (kept or rolled back), the settings and the machine of a run.

    Args:
        teacher: the stage-0 result.
        stages: results of stages 1, 2, ... in order, including rolled-back ones.
        settings: plain values describing the run (teacher mode, target ratio, ...).
        machine: where it was measured; see :func:`machine_info`.
        quantized: the final model quantized for serving, when the run had a ``quantize`` stage.

    Example:
        >>> t = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0,
        ...     latency_ms_b64=10.0, size_bytes=4096, model_path="stage_0/model.pt", kept=True,
        ...     amount=0.0, wall_s=100.0)
        >>> SpiralReport(teacher=t).final is t
        True
    """

    teacher: StageResult
    stages: list[StageResult] = dataclasses.field(default_factory=list)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    machine: dict[str, Any] = dataclasses.field(default_factory=dict)
    quantized: QuantizedResult | None = None

    def __post_init__(self) -> None:
        if self.teacher.stage != 0:
            raise SpiralConfigError(f"`teacher` must be stage 0, got stage {self.teacher.stage}.")
        if any(result.stage < 1 for result in self.stages):
            found = [result.stage for result in self.stages]
            raise SpiralConfigError(f"`stages` must hold stages >= 1 (the teacher is separate), got {found}.")

    @property
    def final(self) -> StageResult:
        """The last kept stage, or the teacher when no stage was kept."""
        kept = [result for result in self.stages if result.kept]
        return kept[-1] if kept else self.teacher

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: every result carries its ratios to the teacher; ``final`` is repeated."""
        return {
            "teacher": self._entry(self.teacher),
            "stages": [self._entry(result) for result in self.stages],
            "final": self._entry(self.final),
            "settings": dict(self.settings),
            "machine": dict(self.machine),
            "quantized": None if self.quantized is None else self.quantized.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpiralReport:
        """Inverse of :meth:`to_dict` (``final`` and the ratios are derived, so they are not read)."""
        if "teacher" not in data:
            raise SpiralConfigError(f"`data` of a spiral report lacks the key 'teacher'; found {sorted(data)}.")
        return cls(
            teacher=StageResult.from_dict(data["teacher"]),
            stages=[StageResult.from_dict(entry) for entry in data.get("stages", [])],
            settings=dict(data.get("settings", {})),
            machine=dict(data.get("machine", {})),
            quantized=QuantizedResult.from_dict(data["quantized"]) if data.get("quantized") else None,
        )

    def _entry(self, result: StageResult) -> dict[str, Any]:
        return {**result.to_dict(), **result.ratios_to(self.teacher)}


def machine_info(threads: int) -> dict[str, Any]:
    """Versions, platform, CPU count, the thread count used for latency, and the date (UTC).

    Example:
        >>> sorted(machine_info(threads=2))[:3]
        ['cpu_count', 'date', 'lightning']
    """
    return {
        "python": platform.python_version(),
        "torch": version("torch"),
        "lightning": version("lightning"),
        "torch_pruning": version("torch-pruning"),  # its __version__ attribute lags the release
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_report(report: SpiralReport, run_dir: str | os.PathLike) -> None:
    """Write ``report.json``, ``report.md`` and ``spiral.png`` into ``run_dir``, each atomically.

    Example:
        >>> import tempfile
        >>> t = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0,
        ...     latency_ms_b64=10.0, size_bytes=4096, model_path="stage_0/model.pt", kept=True,
        ...     amount=0.0, wall_s=100.0)
        >>> run_dir = Path(tempfile.mkdtemp())
        >>> write_report(SpiralReport(teacher=t), run_dir)
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


def read_report(run_dir: str | os.PathLike) -> SpiralReport:
    """Read the ``report.json`` that :func:`write_report` wrote into ``run_dir``."""
    return SpiralReport.from_dict(json.loads((Path(run_dir) / REPORT_JSON).read_text(encoding="utf-8")))


def monitor_key(report: SpiralReport) -> str:
    """The validation key that judged the run's stages (``val/top1`` for runs recorded before monitors)."""
    return (spiral_settings(report).get("monitor") or {}).get("key", "val/top1")


def spiral_settings(report: SpiralReport) -> dict[str, Any]:
    """The spiral's own section of the settings record (the whole settings of runs recorded before it had sections)."""
    return report.settings.get("spiral", report.settings)


def format_score(key: str, value: float | None) -> str:
    """A monitored value: top-1 as a percentage (``91.20``), anything else with 4 significant digits.

    Example:
        >>> format_score("val/top1", 0.912), format_score("val_loss", 0.012345), format_score("val_acc", None)
        ('91.20', '0.01235', '–')
    """
    if value is None:
        return "–"
    return f"{100 * value:.2f}" if key == "val/top1" else f"{value:.4g}"


def table_rows(report: SpiralReport) -> list[list[str]]:
    """The formatted cells of the report table, teacher first, one row per stage, then the quantized model."""
    key = monitor_key(report)
    rows = [list(_cells(result, report.teacher, key).values()) for result in (report.teacher, *report.stages)]
    if report.quantized is not None:
        rows.append(list(_quantized_cells(report.quantized, report.teacher).values()))
    return rows


def summary_line(report: SpiralReport) -> str:
    """One sentence on the final model against the teacher.

    Example:
        >>> t = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0,
        ...     latency_ms_b64=10.0, size_bytes=4096, model_path="stage_0/model.pt", kept=True,
        ...     amount=0.0, wall_s=100.0)
        >>> summary_line(SpiralReport(teacher=t))
        'Final: teacher, top-1 80.00 % (+0.00 pts), 100.0 % of the MACs, 1.00× the batch-64 speed.'
    """
    final, key = report.final, monitor_key(report)
    cells = _cells(final, report.teacher, key)
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
        notes.append(f"{report.quantized.kind}: {escape(_quantized_cells(report.quantized, report.teacher)['note'])}")
    caption = "\n".join([summary_line(report), *notes])
    table = Table(title="Spiral report", caption=caption, box=box.SIMPLE_HEAD, collapse_padding=True)
    columns = [column for column in _COLUMNS if column != "note"]
    for column in columns:
        table.add_column(column, justify="left" if column in _TEXT_COLUMNS else "right", no_wrap=True)
    for result in results:
        cells = _cells(result, report.teacher, monitor_key(report))
        table.add_row(*(cells[column] for column in columns), style=None if result.kept else "dim")
    if report.quantized is not None:
        cells = _quantized_cells(report.quantized, report.teacher)
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
    _draw_panel(right, report, lambda result: result.latency_ms_b64, "batch-64 latency (ms, CPU)")
    if report.quantized is not None:  # same MACs as the final model; its latency is its own runtime's
        _mark_quantized(left, report.quantized, report.final.macs / 1e6)
        _mark_quantized(right, report.quantized, report.quantized.latency_ms_b64)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


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


def _cells(result: StageResult, teacher: StageResult, key: str) -> dict[str, str]:
    """One table row, keyed by column name; ``key`` names the monitored value of the ``val`` column."""
    macs_ratio = _ratio(result.macs, teacher.macs)
    speedup = _ratio(teacher.latency_ms_b64, result.latency_ms_b64)
    values = (
        "teacher" if result.stage == 0 else str(result.stage),
        "yes" if result.kept else "no",
        "–" if result.top1 is None else f"{100 * result.top1:.2f}",
        "–" if result.top1 is None or teacher.top1 is None else f"{100 * (result.top1 - teacher.top1):+.2f}",
        format_score(key, result.val_score),
        format_count(result.params),
        format_count(result.macs),
        "–" if macs_ratio is None else f"{100 * macs_ratio:.1f}",
        f"{result.latency_ms_b1:.2f}",
        f"{result.latency_ms_b64:.2f}",
        "–" if speedup is None else f"{speedup:.2f}×",
        format_bytes(result.size_bytes),
        result.note,
    )
    return dict(zip(_COLUMNS, values, strict=True))


def _quantized_cells(result: QuantizedResult, teacher: StageResult) -> dict[str, str]:
    """The table row of the quantized model: its kind as the stage, figures from its serving runtime."""
    speedup = _ratio(teacher.latency_ms_b64, result.latency_ms_b64)
    cells = dict.fromkeys(_COLUMNS, "–")
    cells.update({
        "stage": result.kind,
        "top-1 %": f"{100 * result.top1:.2f}",
        "Δ pts": f"{100 * (result.top1 - teacher.top1):+.2f}",
        "val": f"{100 * result.val_top1:.2f}",
        "b1 ms": f"{result.latency_ms_b1:.2f}",
        "b64 ms": f"{result.latency_ms_b64:.2f}",
        "speedup b64": "–" if speedup is None else f"{speedup:.2f}×",
        "size": format_bytes(result.size_bytes),
        "note": f"{result.runtime}: {result.note}",
    })
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


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _markdown_cell(text: str) -> str:
    """A cell that cannot break the table: pipes escaped, line breaks turned into spaces."""
    return " ".join(text.replace("|", "\\|").splitlines())


def _key_values(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items()) or "–"
