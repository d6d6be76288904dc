"""Does structured pruning make models faster, not only smaller in MACs? And what do masks give?

For each covered torchvision CNN, prunes 30 / 50 / 70% of the channels (L1, per layer, classifier
kept) with ``lightning_spiral.prune`` and measures CPU latency at batch 1 and 64 with the package's
own ``measure_latency`` (warm-up, median of ``--repeats`` runs, fixed thread count). Next to each
structured model, the dense model with Lightning ``ModelPruning``-style masks (global L1
unstructured, made permanent) at the *same parameter count* shows what masks give on dense kernels.

Every model is timed in both CPU memory layouts, NCHW (PyTorch's default) and NHWC
(``channels_last``), each pruned model against the dense model in the same layout. NHWC matters for
depthwise CNNs: their NCHW depthwise kernels barely speed up when channels are removed.

The key column is ``speed-up / MACs reduction`` at batch 64: 1.0 means latency fell exactly as much
as MACs did; the acceptance bar is 0.7.

Run:  python benchmarks/latency.py                  (32x32 inputs, 3 alternating rounds, about 15 minutes on 2 cores)
      python benchmarks/latency.py --side 224       (ImageNet size; much slower on CPU)
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path
from typing import Any, get_args

import torch
import torch.nn as nn
import torch.nn.utils.prune as torch_prune
from rich.console import Console
from rich.table import Table

from lightning_spiral import prune
from lightning_spiral.atomic import atomic_write_text
from lightning_spiral.measure import MemoryFormat, count_macs, count_params
from lightning_spiral.models import build_model
from lightning_spiral.records import machine_info
from lightning_spiral.timing import fastest_layout, interleaved_latency, side_by_side

HERE = Path(__file__).resolve().parent
MODELS = ("resnet18", "resnet50", "vgg16_bn", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny")
AMOUNTS = (0.3, 0.5, 0.7)
ACCEPTANCE_AMOUNT = 0.5


def masked_copy(model: nn.Module, nonzero_params: int) -> nn.Module:
    """The dense model with global L1 unstructured masks leaving ``nonzero_params`` parameters, made permanent."""
    masked = copy.deepcopy(model)
    weights = [(m, "weight") for m in masked.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prunable = sum(m.weight.numel() for m, _ in weights)
    amount = min(max((count_params(masked) - nonzero_params) / prunable, 0.0), 1.0)
    torch_prune.global_unstructured(weights, pruning_method=torch_prune.L1Unstructured, amount=amount)
    for module, name in weights:
        torch_prune.remove(module, name)
    return masked


def run(models: list[str], side: int, repeats: int, rounds: int, threads: int,
        layouts: list[MemoryFormat]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per model: every variant timed in alternating rounds; the per-layout rows and the fastest-layout summary."""
    shape = (3, side, side)
    example = torch.randn(1, *shape)
    rows, fastest = [], []
    for name in models:
        dense = build_model(f"torchvision.{name}", num_classes=10, input_shape=shape).eval()
        variants: dict[str, tuple[str, float, nn.Module]] = {"dense": ("dense", 0.0, dense)}
        for amount in AMOUNTS:
            pruned = prune(copy.deepcopy(dense), example, amount=amount).eval()
            variants[f"structured@{amount}"] = ("structured", amount, pruned)
            variants[f"masks@{amount}"] = ("masks (ModelPruning)", amount, masked_copy(dense, count_params(pruned)))
        times = interleaved_latency({key: model for key, (_, _, model) in variants.items()}, shape, layouts=layouts,
                                    rounds=rounds, repeats=repeats, threads=threads)
        dense_macs = count_macs(dense, example)
        for layout in layouts:
            for key, (method, amount, model) in variants.items():
                row = {"model": name, "layout": layout, "method": method, "amount": amount, "params": count_params(model),
                       "nonzero_params": sum(int((p != 0).sum()) for p in model.parameters()), "macs": count_macs(model, example)}
                for batch in (1, 64):
                    mine, base = times[key][layout][batch], times["dense"][layout][batch]
                    row[f"latency_ms_b{batch}"] = statistics.median(mine)
                    row[f"speedup_b{batch}"] = statistics.median(b / m for b, m in zip(base, mine))
                row["macs_reduction"] = dense_macs / row["macs"]
                row["speedup_per_macs_b64"] = row["speedup_b64"] / row["macs_reduction"]
                rows.append(row)
                if method == "structured":
                    print(f"[latency] {name} {layout} {amount:.0%}: MACs ÷{row['macs_reduction']:.2f}, "
                          f"b64 ×{row['speedup_b64']:.2f}", flush=True)
        pruned_key = f"structured@{ACCEPTANCE_AMOUNT}"
        summary = side_by_side(times, reference="dense", batch_sizes=(64,))[pruned_key]
        reduction = dense_macs / count_macs(variants[pruned_key][2], example)
        dense_layout = fastest_layout(times["dense"], 64)
        fastest.append({"model": name, "dense_layout": dense_layout, "dense_ms_b64": statistics.median(times["dense"][dense_layout][64]),
                        "pruned_layout": summary["layout_b64"], "pruned_ms_b64": summary["latency_ms_b64"],
                        "macs_reduction": reduction, "speedup_b64": summary["speedup_b64"],
                        "speedup_b64_range": summary["speedup_b64_range"],
                        "speedup_per_macs_b64": summary["speedup_b64"] / reduction})
    return rows, fastest


def render_markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        f"Command `{results['command']}` — {machine.get('date', '')[:10]}, {machine.get('cpu_count')} CPU cores, "
        f"{results['threads']} threads, torch {machine.get('torch')}, input 3×{results['side']}×{results['side']}, "
        f"every variant of a model timed in {results.get('rounds', 1)} alternating rounds (each the median of "
        f"{results['repeats']} runs; the VM's speed drifts), latency the median over rounds, each speed-up taken within a round.",
        "",
        f"Fastest layout of each at batch 64, {ACCEPTANCE_AMOUNT:.0%} of the channels removed (what a deployment "
        "would pick; acceptance: speed-up ÷ MACs reduction ≥ 0.7):",
        "",
        "| model | dense: layout, b64 ms | pruned: layout, b64 ms | MACs ÷ | speed-up b64 (min–max over rounds) | speed-up ÷ MACs reduction |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for row in results["fastest"]:
        lines.append(f"| {row['model']} | {row['dense_layout']}, {row['dense_ms_b64']:.1f} | {row['pruned_layout']}, "
                     f"{row['pruned_ms_b64']:.1f} | {row['macs_reduction']:.2f} | {row['speedup_b64']:.2f}× "
                     f"({row['speedup_b64_range'][0]:.2f}–{row['speedup_b64_range'][1]:.2f}) | {row['speedup_per_macs_b64']:.2f} |")
    lines += [
        "",
        "Every row, each against the dense model in the same layout:",
        "",
        "| model | layout | channels removed | method | params | MACs ÷ | b1 ms | b64 ms | speed-up b1 | speed-up b64 | speed-up b64 ÷ MACs reduction |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["rows"]:
        if row["method"] == "dense":
            lines.append(f"| {row['model']} | {row['layout']} | – | dense | {row['params'] / 1e6:.2f}M | 1.00 | "
                         f"{row['latency_ms_b1']:.2f} | {row['latency_ms_b64']:.1f} | 1.00× | 1.00× | – |")
            continue
        lines.append(
            f"| {row['model']} | {row['layout']} | {row['amount']:.0%} | {row['method']} | {row['nonzero_params'] / 1e6:.2f}M | "
            f"{row['macs_reduction']:.2f} | {row['latency_ms_b1']:.2f} | {row['latency_ms_b64']:.1f} | "
            f"{row['speedup_b1']:.2f}× | {row['speedup_b64']:.2f}× | {row['speedup_per_macs_b64']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--side", type=int, default=32, help="input height and width")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per round (median)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds over a model's variants")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layouts", nargs="+", choices=get_args(MemoryFormat), default=list(get_args(MemoryFormat)))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latency.json")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other models' rows already in --out (same side, repeats, rounds, threads and layouts)")
    args = parser.parse_args(argv)
    settings = {"side": args.side, "repeats": args.repeats, "rounds": args.rounds, "threads": args.threads, "layouts": args.layouts}
    earlier = json.loads(args.out.read_text()) if args.merge and args.out.is_file() else None
    if earlier is not None and {key: earlier.get(key) for key in settings} != settings:
        parser.error(f"--merge: {args.out} was measured with {({key: earlier.get(key) for key in settings})}, "
                     f"this run with {settings}; use the same settings or another --out")
    rows, fastest = run(args.models, args.side, args.repeats, args.rounds, args.threads, args.layouts)
    command = " ".join(["benchmarks/latency.py", *(argv if argv is not None else sys.argv[1:])])
    if earlier is not None:  # earlier models first, in their order; the models measured now replace theirs
        rows = [r for r in earlier["rows"] if r["model"] not in args.models] + rows
        fastest = [r for r in earlier["fastest"] if r["model"] not in args.models] + fastest
    commands = ([*earlier.get("commands", [earlier["command"]])] if earlier is not None else []) + [command]
    results = {"command": "; ".join(commands), "commands": commands, "machine": machine_info(args.threads), **settings,
               "rows": rows, "fastest": fastest}
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    from results_io import in_results_dir, update_results_section  # one writer of RESULTS.md sections

    if in_results_dir(args.out):  # runs written elsewhere (tests, experiments) leave RESULTS.md alone
        key, title = "latency", "latency.py — structured pruning vs masks"
        if args.side != 32:
            key, title = f"latency-{args.side}", f"latency.py --side {args.side} — the same at {args.side}×{args.side} inputs"
        update_results_section(HERE / "RESULTS.md", key, title, render_markdown(results))
    table = Table(title="Structured pruning vs masks: CPU latency")
    for column in ("model", "layout", "removed", "method", "MACs ÷", "b64 ms", "speed-up b64", "÷ MACs reduction"):
        table.add_column(column)
    for row in rows:
        if row["method"] != "dense":
            table.add_row(row["model"], row["layout"], f"{row['amount']:.0%}", row["method"], f"{row['macs_reduction']:.2f}",
                          f"{row['latency_ms_b64']:.1f}", f"{row['speedup_b64']:.2f}×", f"{row['speedup_per_macs_b64']:.2f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
