"""Where does batch-64 CPU time go, dense vs 50% of the channels removed? Per operator type.

latency.py shows the depthwise-separable CNNs speed up far less than their MACs fall when pruned.
This profiles one forward pass (torch.profiler, mean of ``--iterations`` after a warm-up, in the
channels_last layout the latency table picks for them) and splits convolution time into depthwise
(``groups == in_channels``) and the other (dense / pointwise) convolutions, so the operators that do
not scale with MACs are named and measured.

Run:  python benchmarks/op_profile.py                           (about 1 minute on 2 cores)
      python benchmarks/op_profile.py --models mobilenet_v2
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile, record_function

from lightning_spiral import prune
from lightning_spiral.atomic import atomic_write_text
from lightning_spiral.measure import count_macs
from lightning_spiral.models import build_model
from lightning_spiral.records import machine_info

HERE = Path(__file__).resolve().parent
MODELS = ("resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")
OPS = {"aten::conv2d": "conv", "aten::batch_norm": "batch_norm", "aten::hardtanh_": "activation", "aten::relu_": "activation",
       "aten::hardswish_": "activation", "aten::silu_": "activation", "aten::sigmoid": "activation", "aten::mul": "elementwise",
       "aten::add": "elementwise", "aten::add_": "elementwise", "aten::adaptive_avg_pool2d": "pool",
       "aten::max_pool2d": "pool", "aten::linear": "linear"}


def label_depthwise_convs(model: nn.Module) -> list[Any]:
    """Wrap each depthwise convolution's forward in a ``depthwise_conv`` profiler range; return the hook handles."""
    def hook_pre(module: nn.Module, args: Any) -> None:
        module._range = record_function("depthwise_conv")  # noqa: SLF001 (benchmark-only attribute)
        module._range.__enter__()

    def hook_post(module: nn.Module, args: Any, output: Any) -> None:
        module._range.__exit__(None, None, None)

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels:
            handles += [module.register_forward_pre_hook(hook_pre), module.register_forward_hook(hook_post)]
    return handles


def op_times(model: nn.Module, x: torch.Tensor, iterations: int) -> dict[str, float]:
    """Milliseconds per forward pass by operator type (depthwise convolutions separately)."""
    model = copy.deepcopy(model).to(memory_format=torch.channels_last).eval()
    handles = label_depthwise_convs(model)
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(iterations):
                model(x)
    for handle in handles:
        handle.remove()
    times: collections.Counter[str] = collections.Counter()
    for event in prof.key_averages():
        if event.key in OPS:
            times[OPS[event.key]] += event.cpu_time_total / iterations / 1000
        elif event.key == "depthwise_conv":
            times["depthwise_conv"] += event.cpu_time_total / iterations / 1000
    times["conv"] -= times.get("depthwise_conv", 0.0)  # aten::conv2d totals include the depthwise ones
    return dict(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--amount", type=float, default=0.5, help="channel fraction removed")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "op_profile.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = (3, 32, 32)
    results: dict[str, Any] = {"command": " ".join(["op_profile.py", *(argv if argv is not None else sys.argv[1:])]),
                               "machine": machine_info(args.threads), "amount": args.amount, "batch": args.batch, "models": {}}
    lines = [f"{results['command']} — {results['machine'].get('date', '')[:10]}, {args.threads} threads, batch {args.batch}, "
             f"3×32×32, channels_last, {args.amount:.0%} of the channels removed (L1), ms per forward pass "
             f"(torch.profiler, mean of {args.iterations}; profiler overhead included)", "",
             "| model | operator | dense ms | pruned ms | speed-up | share of dense time |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name in args.models:
        dense = build_model(f"torchvision.{name}", num_classes=10, input_shape=shape).eval()
        pruned = prune(copy.deepcopy(dense), torch.randn(1, *shape), amount=args.amount).eval()
        x = torch.randn(args.batch, *shape).to(memory_format=torch.channels_last)
        before, after = op_times(dense, x, args.iterations), op_times(pruned, x, args.iterations)
        macs = count_macs(dense, torch.randn(1, *shape)) / count_macs(pruned, torch.randn(1, *shape))
        results["models"][name] = {"macs_reduction": macs, "dense_ms": before, "pruned_ms": after}
        total = sum(before.values())
        lines.append(f"| {name} | **all** (MACs ÷{macs:.2f}) | {total:.2f} | {sum(after.values()):.2f} | "
                     f"{total / sum(after.values()):.2f}× | 100% |")
        for op in sorted(before, key=lambda op: -before[op]):
            if before[op] > 0.005 * total:
                lines.append(f"| {name} | {op} | {before[op]:.2f} | {after.get(op, 0.0):.2f} | "
                             f"{before[op] / max(after.get(op, 0.0), 1e-9):.2f}× | {before[op] / total:.0%} |")
        print(f"[op_profile] {name}: {total:.2f} -> {sum(after.values()):.2f} ms", flush=True)
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))
    from results_io import in_results_dir, update_results_section  # one writer of RESULTS.md sections

    if in_results_dir(args.out):  # runs written elsewhere (tests, experiments) leave RESULTS.md alone
        update_results_section(HERE / "RESULTS.md", "op-profile", "op_profile.py — where pruned depthwise CNNs spend their time",
                               "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
