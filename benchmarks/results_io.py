"""Writing benchmark results: JSON files, RESULTS.md sections, and compare.py's tables and plot.

Every benchmark writes its section of ``RESULTS.md`` through :func:`update_results_section`, and only
when its output goes to ``benchmarks/results/`` (:func:`in_results_dir`), so a trial run elsewhere
leaves the record alone.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "RESULTS.md"
    >>> update_results_section(path, "demo", "Demo", "a table\\n")
    >>> "<!-- demo:start -->" in path.read_text()
    True
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from profiles import DISTILL_METHODS, HERE, METHODS

from lightning_spiral.atomic import atomic_write_text


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def publish(out: Path, results: dict[str, Any], section: str, title: str, markdown: str) -> None:
    """Write ``results`` to ``out`` and print ``markdown``; into RESULTS.md's ``section`` too when ``out`` is in results/."""
    write_json(out, results)
    print(markdown)
    if in_results_dir(out):
        update_results_section(HERE / "RESULTS.md", section, title, markdown)


def render_markdown(results: dict[str, Any]) -> str:
    """One table per target: accuracy (mean ± std over seeds), size, speed and cost of every method."""
    teacher, machine = results["teacher"], results["machine"]
    b = results["settings"].get("latency_batch", 64)
    layouts = "the faster of the NCHW and channels_last layouts" if len(results["settings"].get("latency_layouts", "12")) > 1 \
        else "the contiguous layout"
    lines = [
        f"Profile `{results['profile']}` — command `{results['command']}` — {machine.get('date', '')[:10]}, "
        f"{machine.get('cpu_count')} CPU cores, {machine.get('threads')} threads, torch {machine.get('torch')}, "
        f"lightning {machine.get('lightning')}, torch-pruning {machine.get('torch_pruning')}.",
        "",
        f"Teacher: test top-1 **{100 * teacher['top1']:.2f}%**, {teacher['params'] / 1e6:.2f}M params, "
        f"{teacher['macs'] / 1e6:.1f}M MACs, {teacher['latency_ms_b1']:.2f} ms (batch 1) / {teacher[f'latency_ms_b{b}']:.1f} ms "
        f"(batch {b}), {teacher['epochs']} epochs in {teacher['wall_s']:.0f} s. Latency: 2 threads, in {layouts} "
        f"at each batch size (per-layout times in the JSON), the median over "
        f"{results['settings'].get('latency_rounds', 1)} rounds that alternate over all models (each round the fastest of "
        f"{results['settings']['latency_repeats']} runs); speed-ups are taken within a round: median (min–max over rounds).",
    ]
    for target in sorted({row["target"] for row in results["rows"]}, reverse=True):
        lines += [
            "",
            f"**Target: {target:.0%} of the teacher's MACs** (test top-1 on the full test split, mean ± std over seeds)",
            "",
            f"| method | top-1 % | Δ pts vs teacher | seeds | params | MACs % | b1 ms | b{b} ms | speed-up b{b} | speed-up ÷ MACs reduction | size | train s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in sorted((r for r in results["rows"] if r["target"] == target), key=lambda r: -r["top1"]):
            speedup, (low, high) = row[f"speedup_b{b}"], row[f"speedup_b{b}_range"]
            reduction = teacher["macs"] / row["macs"]
            lines.append(
                f"| {row['method']} | {100 * row['top1']:.2f} ± {100 * row['top1_std']:.2f} | "
                f"{100 * (row['top1'] - teacher['top1']):+.2f} | {row['seeds']} | {row['params'] / 1e3:.0f}K | "
                f"{100 * row['macs_ratio']:.1f} | {row['latency_ms_b1']:.2f} | {row[f'latency_ms_b{b}']:.1f} | "
                f"{speedup:.2f}× ({low:.2f}–{high:.2f}) | {speedup / reduction:.2f} ({low / reduction:.2f}–{high / reduction:.2f}) | "
                f"{row['size_bytes'] / 1e3:.0f} kB | {row['wall_s']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def in_results_dir(path: Path) -> bool:
    """Whether ``path`` (relative or absolute) is a file in ``benchmarks/results/``: only such runs update RESULTS.md."""
    return path.resolve().parent == (HERE / "results").resolve()


def update_results_section(path: Path, name: str, title: str, body: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` (appended if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    block = f"{start}\n{body}{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"
    atomic_write_text(path, text)


def plot(results: dict[str, Any]) -> bytes:
    """Top-1 against MACs and against the batch latency: every method, both targets, and the teacher."""
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    teacher, b = results["teacher"], results["settings"].get("latency_batch", 64)
    for axis, key, label in zip(figure.subplots(1, 2), ("macs", f"latency_ms_b{b}"), ("MACs (millions)", f"batch-{b} latency (ms, CPU)")):
        scale = 1e6 if key == "macs" else 1.0
        for method in METHODS + DISTILL_METHODS:
            rows = [r for r in results["rows"] if r["method"] == method]
            if rows:
                axis.errorbar([r[key] / scale for r in rows], [100 * r["top1"] for r in rows],
                              yerr=[100 * r["top1_std"] for r in rows], marker="o", linestyle="", capsize=3, label=method)
        axis.scatter([teacher[key] / scale], [100 * teacher["top1"]], marker="*", s=200, color="black", label="teacher")
        axis.set_xlabel(label)
        axis.set_ylabel("test top-1 (%)")
        axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
