"""Does a transformer pruned by heads and MLP width run faster in proportion to its MACs? CPU, side by side.

A small BERT for SST-2 (4 layers, hidden 256, 4 heads, FFN 1024, sequence length 64, random init:
latency does not depend on the weights) is pruned with ``prune(target_macs_ratio=r)`` to 50% and
25% of its MACs — whole heads and MLP neurons, head size and hidden width kept — and, for depth, by
dropping one block at the 50% target. Every model is timed in the same alternating rounds
(:func:`lightning_spiral.timing.interleaved_latency`, 2 threads, batch 1 and 32); each speed-up is
taken within a round and reported as the median with its min–max. The last column divides the
speed-up by the MACs reduction: 1.0 means the time follows the MACs exactly (the issue's goal: ≥ 0.7).

Run:  python benchmarks/transformer_latency.py   (about 2 minutes on a 2-core CPU)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from lightning_spiral.atomic import atomic_write_text
from lightning_spiral.measure import count_macs, count_params
from lightning_spiral.models import build_model
from lightning_spiral.pruning import prune
from lightning_spiral.records import machine_info
from lightning_spiral.timing import interleaved_latency, side_by_side

HERE = Path(__file__).resolve().parent
BERT = dict(vocab_size=15000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
LENGTH = 64
# name -> prune() arguments
VARIANTS = {"heads+MLP @ 50% MACs": dict(target_macs_ratio=0.5), "heads+MLP @ 25% MACs": dict(target_macs_ratio=0.25),
            "1 block + heads+MLP @ 50% MACs": dict(target_macs_ratio=0.5, drop_blocks=1)}


def models() -> dict[str, torch.nn.Module]:
    """The teacher-sized BERT and its pruned variants, all from the same random weights."""
    built = {}
    for name in ["teacher", *VARIANTS]:
        torch.manual_seed(0)
        net = build_model("hf.bert", num_classes=2, input_shape=(LENGTH,), **BERT).eval()
        if name != "teacher":
            prune(net, torch.randint(3, BERT["vocab_size"], (8, LENGTH)), **VARIANTS[name])
        built[name] = net
    return built


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "transformer_latency.json")
    args = parser.parse_args(argv)
    nets = models()
    example = torch.ones(1, LENGTH, dtype=torch.long)
    rounds = interleaved_latency(nets, (LENGTH,), batch_sizes=(1, 32), layouts=("contiguous",),
                                 rounds=args.rounds, repeats=args.repeats, threads=2)
    timed = side_by_side(rounds, reference="teacher", batch_sizes=(1, 32))
    teacher_macs = count_macs(nets["teacher"], example)
    rows = []
    for name, net in nets.items():
        macs = count_macs(net, example)
        figures = timed[name]
        rows.append({"model": name, "params": count_params(net), "macs": macs, "macs_ratio": macs / teacher_macs,
                     "speedup_per_macs_reduction": figures["speedup_b32"] * macs / teacher_macs, **figures,
                     "latency_ms_rounds": rounds[name]})
    results = {"command": " ".join(["python", *sys.argv]), "machine": machine_info(threads=2), "bert": BERT,
               "sequence_length": LENGTH, "rounds": args.rounds, "repeats": args.repeats, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    table = render_markdown(results)
    print(table)
    from results_io import in_results_dir, update_results_section  # one writer of RESULTS.md sections

    if in_results_dir(args.out):  # runs written elsewhere (tests, experiments) leave RESULTS.md alone
        update_results_section(HERE / "RESULTS.md", "transformer-latency",
                               "transformer_latency.py — BERT pruned by heads, MLP width and depth", table)


def render_markdown(results: dict) -> str:
    """The settings line and one row per model: MACs, latency, speed-up at batch 32 and its ratio to the MACs cut."""
    machine = results["machine"]
    lines = [f"Command `{results['command']}` — {machine.get('date', '')[:10]}, {machine.get('cpu_count')} CPU cores, "
             f"2 threads, torch {machine.get('torch')}. BERT {results['bert']}, sequence length {results['sequence_length']}, "
             f"random init; {results['rounds']} alternating rounds (each the fastest of {results['repeats']} calls), "
             "speed-ups within a round: median (min–max over rounds).", "",
             "| model | params | MACs (M) | MACs % | b1 ms | b32 ms | speed-up b32 | ÷ MACs reduction |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["rows"]:
        low, high = row["speedup_b32_range"]
        ratio = row["macs_ratio"]
        lines.append(f"| {row['model']} | {row['params'] / 1e6:.2f}M | {row['macs'] / 1e6:.1f} | {100 * ratio:.1f} | "
                     f"{row['latency_ms_b1']:.2f} | {row['latency_ms_b32']:.1f} | {row['speedup_b32']:.2f}× "
                     f"({low:.2f}–{high:.2f}) | {row['speedup_per_macs_reduction']:.2f} ({low * ratio:.2f}–{high * ratio:.2f}) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
