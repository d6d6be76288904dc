"""The records of a spiral run, as ``report.json`` stores them: plain dataclasses and JSON, no heavy imports.

A :class:`SpiralReport` holds the teacher (stage 0), every later stage — kept or rolled back — as a
:class:`StageResult`, the quantized model (:class:`QuantizedResult`), the side-by-side timing, the
run's settings and the machine it was measured on. :func:`read_report` reads ``report.json`` back
(resume relies on it). Rendering (markdown, terminal table, plot) is :mod:`lightning_spiral.report`;
the driver's judging (``floor``), the sweep objective and resume need only this module.

Accuracies are stored as fractions (0.78); ratios to the teacher are derived.

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
import json
import os
import platform
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from lightning_spiral.checks import check_int, check_interval
from lightning_spiral.errors import SpiralConfigError

R = TypeVar("R")

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
REPORT_PLOT = "spiral.png"


def record_from_dict(cls: type[R], data: dict[str, Any], what: str) -> R:
    """``cls(**data)`` over its fields (other keys ignored), refusing data that lacks a required field."""
    fields = dataclasses.fields(cls)
    missing = sorted(f.name for f in fields if f.default is dataclasses.MISSING and f.name not in data)
    if missing:
        raise SpiralConfigError(f"`data` of {what} lacks the keys {missing}; found {sorted(data)}.")
    return cls(**{f.name: data[f.name] for f in fields if f.name in data})


@dataclasses.dataclass
class QuantizedResult:
    """The quantized final model, measured in the runtime that serves it.

    Its latency is not a field: the artifact is timed in the same alternating rounds as the teacher
    and the kept stages, and those figures are the report's ``timing["quantized"]``
    (:func:`quantized_timing`). Reports written before kept ``latency_ms_b1`` / ``latency_ms_b64``
    here, each timed alone; they still load, and those keys are ignored.

    Args:
        kind: the ``quantize`` option that made it (``"int8_ptq"``, ``"int8_qat"``, ``"fp16"``).
        top1: test top-1 in the serving runtime, as a fraction.
        val_top1: validation top-1 in the serving runtime, as a fraction.
        size_bytes: size of the model file.
        runtime: the serving runtime and its version, e.g. ``"onnxruntime 1.32.0"``.
        model_path: the model file, relative to the run directory.
        note: how it was made (e.g. whether fine-tuning ran).

    Example:
        >>> q = QuantizedResult(kind="int8_ptq", top1=0.76, val_top1=0.77, size_bytes=130_000,
        ...     runtime="onnxruntime 1.32.0", model_path="quantized/model.onnx")
        >>> QuantizedResult.from_dict(q.to_dict()) == q
        True
        >>> QuantizedResult.from_dict({**q.to_dict(), "latency_ms_b64": 9.0}) == q  # an older report's entry
        True
    """

    kind: str
    top1: float
    val_top1: float
    size_bytes: int
    runtime: str
    model_path: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantizedResult:
        """Inverse of :meth:`to_dict`."""
        return record_from_dict(cls, data, "a quantized result")


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
            "macs_ratio": ratio(self.macs, reference.macs),
            "params_ratio": ratio(self.params, reference.params),
            "latency_ratio_b1": ratio(self.latency_ms_b1, reference.latency_ms_b1),
            "latency_ratio_b64": ratio(self.latency_ms_b64, reference.latency_ms_b64),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageResult:
        """Inverse of :meth:`to_dict`; keys that are not fields (e.g. ratios) are ignored."""
        return record_from_dict(cls, data, "a stage result")


@dataclasses.dataclass
class SpiralReport:
    """The teacher, every later stage (kept or rolled back), the settings and the machine of a run.

    Args:
        teacher: the stage-0 result.
        stages: results of stages 1, 2, ... in order, including rolled-back ones.
        settings: plain values describing the run (teacher mode, target ratio, ...).
        machine: where it was measured; see :func:`machine_info`.
        quantized: the final model quantized for serving, when the run had a ``quantize`` stage.
        timing: the teacher, every kept stage and the quantized artifact timed again side by side
            after the last stage (:func:`lightning_spiral.timing.side_by_side`): ``device``,
            ``threads``, ``rounds``, ``max_spread``, ``note``; ``stages``: per stage number (a
            string), its latencies, layouts, speed-ups with their min–max over rounds, and
            ``flagged`` batch sizes; ``quantized``: the same figures of the quantized artifact in
            its serving ``runtime`` (``None``, or absent in older reports, without one). ``None``
            until then: the per-stage figures are provisional (each stage timed alone).

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
    timing: dict[str, Any] | None = None

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
            "timing": self.timing,
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
            timing=data.get("timing"),
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


def read_report(run_dir: str | os.PathLike) -> SpiralReport:
    """Read the ``report.json`` that :func:`write_report` wrote into ``run_dir``."""
    return SpiralReport.from_dict(json.loads((Path(run_dir) / REPORT_JSON).read_text(encoding="utf-8")))


def monitor_key(report: SpiralReport) -> str:
    """The validation key that judged the run's stages (``val/top1`` for runs recorded before monitors)."""
    return (spiral_settings(report).get("monitor") or {}).get("key", "val/top1")


def spiral_settings(report: SpiralReport) -> dict[str, Any]:
    """The spiral's own section of the settings record (the whole settings of runs recorded before it had sections)."""
    return report.settings.get("spiral", report.settings)


def side_by_side_of(report: SpiralReport, result: StageResult) -> dict[str, Any] | None:
    """The stage's figures from the side-by-side timing, or ``None`` (not timed so: rolled back, or no timing yet)."""
    return (report.timing or {}).get("stages", {}).get(str(result.stage))


def quantized_timing(report: SpiralReport) -> dict[str, Any] | None:
    """The quantized artifact's figures from the side-by-side timing, or ``None`` (no artifact, or not timed so yet).

    Example:
        >>> t = StageResult(stage=0, top1=0.8, val_top1=0.8, params=10, macs=100, latency_ms_b1=1.0,
        ...     latency_ms_b64=10.0, size_bytes=4096, model_path="stage_0/model.pt", kept=True,
        ...     amount=0.0, wall_s=100.0)
        >>> quantized_timing(SpiralReport(teacher=t, timing={"stages": {}, "quantized": {"speedup_b64": 3.1}}))
        {'speedup_b64': 3.1}
        >>> quantized_timing(SpiralReport(teacher=t, timing={"stages": {}})) is None  # timed before the entry existed
        True
    """
    return (report.timing or {}).get("quantized")


def format_score(key: str, value: float | None) -> str:
    """A monitored value: top-1 as a percentage (``91.20``), anything else with 4 significant digits.

    Example:
        >>> format_score("val/top1", 0.912), format_score("val_loss", 0.012345), format_score("val_acc", None)
        ('91.20', '0.01235', '–')
    """
    if value is None:
        return "–"
    return f"{100 * value:.2f}" if key == "val/top1" else f"{value:.4g}"


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None

