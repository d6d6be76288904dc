"""What distillation and structural pruning cost in wall-clock time, measured on the CPU.

A standalone script (the package never imports it). Two measurements, each the median of repeated
``time.perf_counter`` readings after a warm-up:

1. **Distillation step.** For each teacher/student pair, on one fp32 batch of 128 random 3×32×32
   images, three things are timed, interleaved round-robin (a, b, c, a, b, c, ...) so that drift on
   a shared machine hits all three alike:

   (a) a plain student training step: forward, cross-entropy, backward, SGD step;
   (b) a distillation step: teacher forward in eval mode under ``torch.no_grad()``, then the same
       student step with ``KDLoss(temperature=4.0, alpha=0.9)`` in place of the cross-entropy;
   (c) the teacher forward alone (eval, ``no_grad``);
   (d) a distillation step whose teacher logits come from
       :class:`~lightning_spiral.distill.teacher_cache.TeacherOutputCache` (filled once before timing),
       as ``SpiralModule(cache_teacher=True)`` runs every epoch after the first; (d) / (a) is its cost
       over a plain student step.

   If distillation costs nothing beyond the teacher's forward pass, (b) ≈ (a) + (c); the ratio
   (b) / ((a) + (c)) shows what is left over.
2. **Pruning step.** ``lightning_spiral.prune(model, example, amount=0.5)`` on a fresh model each
   repeat (median of 3), with parameters and MACs before and after.

Results are printed as tables and written atomically to ``benchmarks/results/overhead.json`` with
the machine info, the settings, every median (ms and images/s), the raw samples and the load
average before and after. Absolute times drift on a shared machine; ratios are steadier.

Usage:
    python benchmarks/overhead.py            # full run, a few minutes on 2 cores
    python benchmarks/overhead.py --quick    # smoke test: 3 repeats, 1 warm-up, no resnet50
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from rich import box
from rich.console import Console
from rich.table import Table

from lightning_spiral import KDLoss, build_model, prune
from lightning_spiral.atomic import atomic_write_text
from lightning_spiral.distill.teacher_cache import TeacherOutputCache
from lightning_spiral.measure import count_macs, count_params
from lightning_spiral.records import machine_info
from lightning_spiral.report import format_count

BATCH = 128
CIFAR_SHAPE = (3, 32, 32)
KD_TEMPERATURE, KD_ALPHA = 4.0, 0.9
SGD_SETTINGS = {"lr": 0.01, "momentum": 0.9}
PRUNE_AMOUNT, PRUNE_REPEATS = 0.5, 3
# (registry name, num_classes, input shape of one sample)
PRUNE_CASES: tuple[tuple[str, int, tuple[int, int, int]], ...] = (
    ("resnet56", 10, CIFAR_SHAPE),
    ("torchvision.resnet50", 1000, (3, 224, 224)),
)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "overhead.json"
STEPS = ("student_step", "distill_step", "teacher_forward", "cached_distill_step")  # (a), (b), (c), (d)


def build_pairs() -> list[tuple[str, nn.Module, nn.Module]]:
    """The (label, teacher, student) pairs: VGG-BN and the CIFAR MobileNetV2 (what ``latency_allocation.py`` trains),
    each with its own copy pruned to 20% / 50% MACs; resnet18 → ResNet-20."""
    example = torch.randn(1, *CIFAR_SHAPE)
    vgg = build_model("vgg_bn", num_classes=10, input_shape=CIFAR_SHAPE)
    vgg_student = prune(copy.deepcopy(vgg), example, target_macs_ratio=0.2)
    mobilenet = build_model("mobilenet_v2", num_classes=10, input_shape=CIFAR_SHAPE)
    mobilenet_student = prune(copy.deepcopy(mobilenet), example, target_macs_ratio=0.5)
    resnet18 = build_model("torchvision.resnet18", num_classes=10, input_shape=CIFAR_SHAPE)
    resnet20 = build_model("resnet20", num_classes=10, input_shape=CIFAR_SHAPE)
    return [("vgg_bn → vgg_bn@20% MACs", vgg, vgg_student), ("mobilenet_v2 → mobilenet_v2@50% MACs", mobilenet, mobilenet_student),
            ("tv.resnet18 → resnet20", resnet18, resnet20)]


def make_steps(teacher: nn.Module, student: nn.Module) -> dict[str, Callable[[], None]]:
    """The three closures timed per pair, keyed as in :data:`STEPS`; (a) and (b) share one optimizer."""
    images = torch.randn(BATCH, *CIFAR_SHAPE)  # (128, 3, 32, 32)
    labels = torch.randint(0, 10, (BATCH,))  # (128,)
    teacher.eval()
    student.train()
    optimizer = torch.optim.SGD(student.parameters(), **SGD_SETTINGS)
    kd_loss = KDLoss(temperature=KD_TEMPERATURE, alpha=KD_ALPHA)

    def student_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(student(images), labels).backward()
        optimizer.step()

    def distill_step() -> None:
        with torch.no_grad():
            teacher_logits = teacher(images)  # (128, 10)
        optimizer.zero_grad(set_to_none=True)
        kd_loss(student(images), teacher_logits, labels).backward()
        optimizer.step()

    def teacher_forward() -> None:
        with torch.no_grad():
            teacher(images)

    cache = TeacherOutputCache()
    with torch.no_grad():
        cache.store(images, teacher(images))

    def cached_distill_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        kd_loss(student(images), cache.lookup(images), labels).backward()
        optimizer.step()

    return {"student_step": student_step, "distill_step": distill_step, "teacher_forward": teacher_forward,
            "cached_distill_step": cached_distill_step}


def time_round_robin(steps: dict[str, Callable[[], None]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Call every step ``warmup`` times untimed, then ``repeats`` rounds of one timed call each; samples in ms."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return samples


def measure_pair(label: str, teacher: nn.Module, student: nn.Module, repeats: int, warmup: int) -> dict[str, Any]:
    """Sizes, medians (ms and images/s), the ratio (b) / ((a) + (c)) and the raw samples of one pair."""
    example = torch.randn(1, *CIFAR_SHAPE)
    sizes = {
        "teacher_params": count_params(teacher),
        "teacher_macs": count_macs(teacher, example),
        "student_params": count_params(student),
        "student_macs": count_macs(student, example),
    }
    samples = time_round_robin(make_steps(teacher, student), repeats, warmup)
    median_ms = {name: statistics.median(samples[name]) for name in STEPS}
    median_ms["sum_of_parts"] = median_ms["student_step"] + median_ms["teacher_forward"]
    return {
        "pair": label,
        **sizes,
        "median_ms": median_ms,
        "images_per_s": {name: BATCH * 1e3 / ms for name, ms in median_ms.items()},
        "distill_over_sum_of_parts": median_ms["distill_step"] / median_ms["sum_of_parts"],
        "cached_distill_over_student_step": median_ms["cached_distill_step"] / median_ms["student_step"],
        "samples_ms": samples,
    }


def measure_pruning(name: str, num_classes: int, input_shape: Sequence[int]) -> dict[str, Any]:
    """Median wall time of ``prune(amount=0.5)`` on fresh models, with params and MACs before and after."""
    example = torch.randn(1, *input_shape)
    models = [build_model(name, num_classes=num_classes, input_shape=input_shape) for _ in range(PRUNE_REPEATS)]
    before = {"params_before": count_params(models[0]), "macs_before": count_macs(models[0], example)}
    samples: list[float] = []
    for model in models:
        start = time.perf_counter()
        prune(model, example, amount=PRUNE_AMOUNT)
        samples.append((time.perf_counter() - start) * 1e3)
    return {
        "model": name,
        "input_shape": list(input_shape),
        "amount": PRUNE_AMOUNT,
        "median_ms": statistics.median(samples),
        "samples_ms": samples,
        **before,
        "params_after": count_params(models[-1]),
        "macs_after": count_macs(models[-1], example),
    }


def distill_table(rows: list[dict[str, Any]]) -> Table:
    """Medians per pair: (a), (c), (a)+(c), (b) in ms, the ratio, and images/s."""
    table = Table(title=f"Training step, batch {BATCH}, fp32 (median ms)", box=box.SIMPLE_HEAD)
    for column in ("pair", "T / S MACs", "(a) student", "(c) teacher fwd", "(a)+(c)", "(b) distill",
                   "(b)/((a)+(c))", "(d) cached", "(d)/(a)", "img/s (a)", "img/s (b)"):
        table.add_column(column, justify="left" if column == "pair" else "right", no_wrap=True)
    for row in rows:
        ms, ips = row["median_ms"], row["images_per_s"]
        table.add_row(
            row["pair"],
            f"{format_count(row['teacher_macs'])} / {format_count(row['student_macs'])}",
            *(f"{ms[name]:.1f}" for name in ("student_step", "teacher_forward", "sum_of_parts", "distill_step")),
            f"{row['distill_over_sum_of_parts']:.3f}",
            f"{ms['cached_distill_step']:.1f}",
            f"{row['cached_distill_over_student_step']:.3f}",
            f"{ips['student_step']:.0f}",
            f"{ips['distill_step']:.0f}",
        )
    return table


def pruning_table(rows: list[dict[str, Any]]) -> Table:
    """Median pruning time per model with params and MACs before → after."""
    table = Table(title=f"prune(amount={PRUNE_AMOUNT}), median of {PRUNE_REPEATS}", box=box.SIMPLE_HEAD)
    for column in ("model", "input", "ms", "params", "MACs"):
        table.add_column(column, justify="left" if column in ("model", "input") else "right", no_wrap=True)
    for row in rows:
        table.add_row(
            row["model"],
            "×".join(map(str, row["input_shape"])),
            f"{row['median_ms']:.0f}",
            f"{format_count(row['params_before'])} → {format_count(row['params_after'])}",
            f"{format_count(row['macs_before'])} → {format_count(row['macs_after'])}",
        )
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` overrides ``--repeats`` and ``--warmup``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed training steps per measurement (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 repeats, 1 warm-up, skip resnet50")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results JSON (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        got = f"{args.threads}, {args.repeats}, {args.warmup}"
        parser.error(f"need --threads >= 1, --repeats >= 1, --warmup >= 0; got {got}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run both measurements, print the tables and write the JSON results."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    console = Console() if Console().is_terminal else Console(width=140)  # pipes would squeeze to 80
    load_start = os.getloadavg()
    distill_rows = [measure_pair(*pair, args.repeats, args.warmup) for pair in build_pairs()]
    console.print(distill_table(distill_rows))
    cases = PRUNE_CASES[:1] if args.quick else PRUNE_CASES
    pruning_rows = [measure_pruning(*case) for case in cases]
    console.print(pruning_table(pruning_rows))
    load_end = os.getloadavg()
    loads = [" ".join(f"{value:.2f}" for value in load) for load in (load_start, load_end)]
    console.print(f"load average (1, 5, 15 min): start {loads[0]}, end {loads[1]}")
    results = {
        "machine": machine_info(args.threads),
        "settings": {
            "batch": BATCH, "input_shape": list(CIFAR_SHAPE), "dtype": "float32", "sgd": SGD_SETTINGS,
            "kd_temperature": KD_TEMPERATURE, "kd_alpha": KD_ALPHA, "repeats": args.repeats, "warmup": args.warmup,
            "prune_amount": PRUNE_AMOUNT, "prune_repeats": PRUNE_REPEATS, "quick": args.quick,
        },
        "load_average": {"start": list(load_start), "end": list(load_end)},
        "distillation": distill_rows,
        "pruning": pruning_rows,
    }
    atomic_write_text(args.out, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
