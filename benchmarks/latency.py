"""Does structured pruning make models faster, not only smaller in MACs? And what do masks give?

For each covered torchvision CNN, prunes 30 / 50 / 70% of the channels (L1, per layer, classifier
kept) with ``lightning_spiral.prune`` and measures CPU latency at batch 1 and 64 with the package's
own ``measure_latency`` (warm-up, median of ``--repeats`` runs, fixed thread count). Next to each
structured model, the dense model with Lightning ``ModelPruning``-style masks (global L1
unstructured, made permanent) at the *same parameter count* shows what masks give on dense kernels.

The key column is ``speed-up / MACs reduction`` at batch 64: 1.0 means latency fell exactly as much
as MACs did; the acceptance bar is 0.7.

Run:  python benchmarks/latency.py                  (32x32 inputs, about 10 minutes on 2 cores)
      python benchmarks/latency.py --side 224       (ImageNet size; much slower on CPU)
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.utils.prune as torch_prune
from rich.console import Console
from rich.table import Table

from lightning_spiral import prune
from lightning_spiral.atomic import atomic_write_text
from lightning_spiral.measure import count_macs, count_params, measure_latency
from lightning_spiral.models import build_model
from lightning_spiral.report import machine_info

HERE = Path(__file__).resolve().parent
MODELS = ("resnet18", "resnet50", "vgg16_bn", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny")
AMOUNTS = (0.3, 0.5, 0.7)


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


def measure_row(name: str, model: nn.Module, shape: tuple[int, ...], repeats: int, threads: int) -> dict[str, Any]:
    example = torch.randn(1, *shape)
    return {
        "model": name,
        "params": count_params(model),
        "nonzero_params": sum(int((p != 0).sum()) for p in model.parameters()),
        "macs": count_macs(model, example),
        "latency_ms_b1": measure_latency(model, shape, 1, repeats=repeats, threads=threads),
        "latency_ms_b64": measure_latency(model, shape, 64, repeats=repeats, threads=threads),
    }


def run(models: list[str], side: int, repeats: int, threads: int) -> list[dict[str, Any]]:
    shape = (3, side, side)
    rows = []
    for name in models:
        dense = build_model(f"torchvision.{name}", num_classes=10, input_shape=shape).eval()
        base = measure_row(name, dense, shape, repeats, threads) | {"method": "dense", "amount": 0.0}
        rows.append(base)
        for amount in AMOUNTS:
            pruned = prune(copy.deepcopy(dense), torch.randn(1, *shape), amount=amount).eval()
            structured = measure_row(name, pruned, shape, repeats, threads) | {"method": "structured", "amount": amount}
            masked = measure_row(name, masked_copy(dense, structured["params"]), shape, repeats, threads)
            rows += [structured, masked | {"method": "masks (ModelPruning)", "amount": amount}]
            for row in rows[-2:]:
                row["macs_reduction"] = base["macs"] / row["macs"]
                row["speedup_b1"] = base["latency_ms_b1"] / row["latency_ms_b1"]
                row["speedup_b64"] = base["latency_ms_b64"] / row["latency_ms_b64"]
                row["speedup_per_macs_b64"] = row["speedup_b64"] / row["macs_reduction"]
            print(f"[latency] {name} {amount:.0%}: MACs ÷{structured['macs_reduction']:.2f}, "
                  f"b64 ×{structured['speedup_b64']:.2f} (masks ×{rows[-1]['speedup_b64']:.2f})", flush=True)
    return rows


def render_markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        f"Command `{results['command']}` — {machine.get('date', '')[:10]}, {machine.get('cpu_count')} CPU cores, "
        f"{results['threads']} threads, torch {machine.get('torch')}, input 3×{results['side']}×{results['side']}, "
        f"median of {results['repeats']} runs.",
        "",
        "| model | channels removed | method | params | MACs ÷ | b1 ms | b64 ms | speed-up b1 | speed-up b64 | speed-up b64 ÷ MACs reduction |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["rows"]:
        if row["method"] == "dense":
            lines.append(f"| {row['model']} | – | dense | {row['params'] / 1e6:.2f}M | 1.00 | {row['latency_ms_b1']:.2f} | "
                         f"{row['latency_ms_b64']:.1f} | 1.00× | 1.00× | – |")
            continue
        lines.append(
            f"| {row['model']} | {row['amount']:.0%} | {row['method']} | {row['nonzero_params'] / 1e6:.2f}M | "
            f"{row['macs_reduction']:.2f} | {row['latency_ms_b1']:.2f} | {row['latency_ms_b64']:.1f} | "
            f"{row['speedup_b1']:.2f}× | {row['speedup_b64']:.2f}× | {row['speedup_per_macs_b64']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--side", type=int, default=32, help="input height and width")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latency.json")
    args = parser.parse_args(argv)
    rows = run(args.models, args.side, args.repeats, args.threads)
    results = {"command": " ".join(sys.argv), "machine": machine_info(args.threads), "side": args.side,
               "repeats": args.repeats, "threads": args.threads, "rows": rows}
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    if args.out == HERE / "results" / "latency.json":
        from compare import update_results_section  # one writer of RESULTS.md sections

        update_results_section(HERE / "RESULTS.md", "latency", "latency.py — structured pruning vs masks", render_markdown(results))
    table = Table(title="Structured pruning vs masks: CPU latency")
    for column in ("model", "removed", "method", "MACs ÷", "b64 ms", "speed-up b64", "÷ MACs reduction"):
        table.add_column(column)
    for row in rows:
        if row["method"] != "dense":
            table.add_row(row["model"], f"{row['amount']:.0%}", row["method"], f"{row['macs_reduction']:.2f}",
                          f"{row['latency_ms_b64']:.1f}", f"{row['speedup_b64']:.2f}×", f"{row['speedup_per_macs_b64']:.2f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
