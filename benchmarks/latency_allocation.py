"""Latency-aware allocation against uniform pruning at the same measured latency (issue 19).

For each latency budget (a fraction of the teacher's batch-64 CPU latency), the cached teacher of
``--profile`` (default ``mobilenetv2``: the CIFAR MobileNetV2, where speed follows the MACs least;
``smoke_latency`` for the test suite) is pruned twice, once, in the main process while nothing else runs:

1. ``latency_allocation="uniform"``: every layer cut by the same fraction, in 5% steps, until the
   measured latency fits the budget;
2. ``latency_allocation="per_layer"``: the per-group latency table and greedy allocation of
   :mod:`lightning_spiral.pruning.latency_allocation`, given as budget the latency the uniform
   student *reached* — both students then run at the same measured latency. A per_layer student that
   prunes nothing (the teacher measured within that latency: timing noise) stops the benchmark.

Every seed then distils each student from the teacher for ``--epochs`` epochs with the profile's
one-shot recipe (worker processes, ``--accelerator gpu`` on a GPU), and every final model is timed
side by side in alternating rounds (:mod:`lightning_spiral.timing`, 2 threads, nothing training).
Per budget the table pairs the seeds: the top-1 difference per_layer − uniform, and the latency
ratio per_layer / uniform within each round (the issue asks for equal latency within ±5%).

Students, runs and timings are cached under ``cache/<profile>/latency_allocation/teacher_<sha>/``:
an interrupted benchmark continues. Output: ``results/latency_allocation.json`` and RESULTS.md's
``latency_allocation`` section.

Run:  python benchmarks/latency_allocation.py --accelerator gpu --workers 6     (one GPU: not yet run)
      python benchmarks/latency_allocation.py --workers 2                       (this 2-core CPU: ~20 hours, see overhead.py)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import json
import multiprocessing
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lightning_spiral import load_model, prune, save_model  # noqa: E402
from lightning_spiral.measure import count_macs, count_params, measure_latency  # noqa: E402
from lightning_spiral.models.spec import spec_of  # noqa: E402
from lightning_spiral.records import machine_info  # noqa: E402
from lightning_spiral.spiral.describe import file_sha256  # noqa: E402
from lightning_spiral.timing import interleaved_latency  # noqa: E402

from compare import Benchmark, example_input  # noqa: E402
from profiles import DEFAULT_DATA  # noqa: E402
from results_io import publish, write_json  # noqa: E402

ALLOCATIONS = ("uniform", "per_layer")
BATCH = 64
TITLE = "latency_allocation.py — per-layer latency allocation against uniform pruning"


def plan_students(teacher: torch.nn.Module, budgets: list[float], out: Path, repeats: int) -> dict[str, Any]:
    """The teacher's latency and, per budget, the uniform and per-layer students (saved once, then reused)."""
    plan_file = out / "plan.json"
    plan = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
    shape, example = spec_of(teacher).input_shape, example_input(teacher)
    teacher_macs = count_macs(teacher, example)
    if "teacher_ms" not in plan:  # measured once: the budgets of later invocations are fractions of the same figure
        plan["teacher_ms"] = measure_latency(teacher, shape, BATCH, repeats=repeats, threads=2)
    for budget in budgets:
        key = f"{budget:g}"
        if key in plan.get("students", {}):
            continue
        uniform = prune(copy.deepcopy(teacher), example, target_latency_ms=budget * plan["teacher_ms"], latency_allocation="uniform")
        reached = measure_latency(uniform, shape, BATCH, repeats=repeats, threads=2)
        per_layer = prune(copy.deepcopy(teacher), example, target_latency_ms=reached, latency_allocation="per_layer")
        if count_macs(per_layer, example) == teacher_macs:  # the teacher measured within the budget: nothing to compare
            sys.exit(f"[latency_allocation] budget {key}: per_layer pruned nothing at the {reached:.2f} ms uniform reached "
                     f"(teacher {plan['teacher_ms']:.2f} ms); latency noise this large needs a smaller --budgets value")
        students = {}
        for allocation, student in zip(ALLOCATIONS, (uniform, per_layer)):
            path = out / f"b{key}" / allocation / "student.pt"
            save_model(student, path)
            students[allocation] = {"path": str(path.relative_to(out)), "macs": count_macs(student, example),
                                    "params": count_params(student)}
        plan.setdefault("students", {})[key] = students | {"budget_ms": budget * plan["teacher_ms"], "uniform_reached_ms": reached}
        write_json(plan_file, plan)  # after every budget: a crash keeps the students already made
    return plan


def run_one(profile: str, data: str, cache_dir: str, teacher_file: str, accelerator: str,
            student_file: str, epochs: int, seed: int) -> dict[str, Any]:
    """Distil one planned student for ``epochs`` epochs with ``seed`` in a worker process; cached as ``result.json``."""
    torch.set_num_threads(1)
    out = Path(student_file).parent / f"s{seed}"
    if (out / "result.json").is_file():
        return json.loads((out / "result.json").read_text())
    benchmark = Benchmark(profile, Path(data), Path(cache_dir), HERE / "results", [], accelerator=accelerator,
                          teacher_file=Path(teacher_file))
    student = load_model(student_file).train()
    top1, wall = benchmark.train_student(student, epochs, seed, distill=True, callbacks=[])
    save_model(student, out / "model.pt")
    result = {"seed": seed, "top1": top1, "wall_s": wall, "model_path": str(out / "model.pt")}
    write_json(out / "result.json", result)
    return result


def time_finals(teacher: torch.nn.Module, finals: dict[str, str], rounds: int, repeats: int) -> dict[str, list[float]]:
    """Batch-64 latency of the teacher and every final model, each round timing all of them once."""
    models = {"teacher": teacher} | {name: load_model(path) for name, path in finals.items()}
    times = interleaved_latency(models, spec_of(teacher).input_shape, batch_sizes=(BATCH,), layouts=("contiguous",),
                                rounds=rounds, repeats=repeats, threads=2)
    return {name: times[name]["contiguous"][BATCH] for name in models}


def summarise(plan: dict[str, Any], runs: dict[str, list[dict[str, Any]]], rounds: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Per budget and allocation: top-1 over seeds, measured latency, and per_layer against uniform paired by seed and round."""
    rows = []
    for key, students in plan["students"].items():
        top1 = {allocation: {r["seed"]: r["top1"] for r in runs[f"b{key}/{allocation}"]} for allocation in ALLOCATIONS}
        seeds = sorted(set(top1["uniform"]) & set(top1["per_layer"]))
        for allocation in ALLOCATIONS:
            values = [top1[allocation][s] for s in seeds]
            diffs = [top1[allocation][s] - top1["uniform"][s] for s in seeds]
            latency = rounds[f"b{key}/{allocation}"]
            ratios = [mine / theirs for mine, theirs in zip(latency, rounds[f"b{key}/uniform"])]  # within each round
            rows.append({
                "budget": float(key), "budget_ms": students["budget_ms"], "allocation": allocation, "seeds": seeds,
                "top1": statistics.mean(values), "top1_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "top1_per_seed": values, "vs_uniform": statistics.mean(diffs),
                "vs_uniform_std": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
                "latency_ms_b64": statistics.median(latency), "latency_ms_b64_range": [min(latency), max(latency)],
                "latency_vs_uniform": statistics.median(ratios), "latency_vs_uniform_range": [min(ratios), max(ratios)],
                "macs": students[allocation]["macs"], "params": students[allocation]["params"],
            })
    return rows


def render_markdown(results: dict[str, Any]) -> str:
    teacher = results["teacher"]
    lines = [f"`{results['command']}` — {results['machine'].get('date', '')[:10]}, {results['device']}; teacher "
             f"{100 * teacher['top1']:.2f}%, {teacher['macs'] / 1e6:.1f}M MACs, {teacher['latency_ms_b64']:.1f} ms at batch 64 "
             f"(CPU, 2 threads, contiguous layout, {results['rounds']} alternating rounds). Both students of a budget are "
             f"distilled for {results['epochs']} epoch(s) with the same recipe; per_layer was given the latency the uniform "
             "student reached. 'vs uniform' pairs the seeds; the latency ratio is taken within each round (equal: 0.95–1.05).",
             "", "| budget | allocation | seeds | top-1 % | vs uniform (pts) | batch-64 ms | latency vs uniform | MACs M | params M |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["rows"]:
        low, high = row["latency_vs_uniform_range"]
        lines.append(f"| {row['budget']:.0%} ({row['budget_ms']:.1f} ms) | {row['allocation']} | {len(row['seeds'])} | "
                     f"{100 * row['top1']:.2f} ± {100 * row['top1_std']:.2f} | {100 * row['vs_uniform']:+.2f} ± "
                     f"{100 * row['vs_uniform_std']:.2f} | {row['latency_ms_b64']:.1f} | {row['latency_vs_uniform']:.3f} "
                     f"({low:.3f}–{high:.3f}) | {row['macs'] / 1e6:.1f} | {row['params'] / 1e6:.2f} |")
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="mobilenetv2", choices=["mobilenetv2", "smoke_latency"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=HERE / "cache")
    parser.add_argument("--teacher", type=Path, default=None, help="a trained teacher model.pt (result.json beside it); default: trained and cached")
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.7, 0.5], help="fractions of the teacher's batch-64 latency")
    parser.add_argument("--epochs", type=int, default=24, help="distillation epochs of every student")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds of the final models")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per latency measurement")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latency_allocation.json")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"--data {str(args.data)!r} does not exist (expected e.g. ../shared/data/cifar10_subset.npz)")
    bad = [b for b in args.budgets if not 0 < b < 1]
    if bad:
        parser.error(f"--budgets must be fractions of the teacher's latency in (0, 1), got {bad}")
    for name in ("epochs", "workers", "rounds", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    benchmark = Benchmark(args.profile, args.data, args.cache_dir, HERE / "results", [], accelerator=args.accelerator,
                          teacher_file=args.teacher)
    teacher_path = benchmark.teacher()  # trained and cached here, once, before anything is timed
    teacher = load_model(teacher_path).eval()
    out = benchmark.cache / "latency_allocation" / f"teacher_{file_sha256(teacher_path)[:12]}"
    plan = plan_students(teacher, args.budgets, out, args.repeats)
    plan["students"] = {f"{b:g}": plan["students"][f"{b:g}"] for b in args.budgets}  # this invocation's budgets only
    names = {f"b{key}/{allocation}": str(out / students[allocation]["path"])
             for key, students in plan["students"].items() for allocation in ALLOCATIONS}
    common = (args.profile, str(args.data), str(args.cache_dir), str(teacher_path), args.accelerator)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    failed = []
    with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_one, *common, path, args.epochs, seed): (name, seed) for name, path in names.items() for seed in args.seeds}
        for future in concurrent.futures.as_completed(futures):
            name, seed = futures[future]
            try:
                runs[name].append(future.result())
            except Exception as error:  # the others go on; a rerun continues from the cache
                failed.append(f"{name} seed {seed}: {error!r}")
                continue
            print(f"[latency_allocation] {name} seed {seed}: top-1 {runs[name][-1]['top1']:.4f}", flush=True)
    if failed:
        sys.exit("[latency_allocation] FAILED, nothing summarised (finished runs are cached): " + "; ".join(failed))
    first = {name: min(found, key=lambda r: r["seed"])["model_path"] for name, found in runs.items()}
    rounds = time_finals(teacher, first, args.rounds, args.repeats)  # alone: nothing trains while it times
    teacher_record = json.loads(teacher_path.with_name("result.json").read_text())
    results = {
        "command": " ".join(["latency_allocation.py", *(argv if argv is not None else sys.argv[1:])]),
        "device": torch.cuda.get_device_name(0) if args.accelerator == "gpu" else "CPU", "machine": machine_info(threads=2),
        "profile": args.profile, "epochs": args.epochs, "rounds": args.rounds, "repeats": args.repeats,
        "teacher": {"top1": teacher_record["top1"], "macs": count_macs(teacher, example_input(teacher)),
                    "params": count_params(teacher), "latency_ms_b64": statistics.median(rounds["teacher"])},
        "rows": summarise(plan, runs, rounds), "latency_ms_rounds": rounds,
    }
    publish(args.out, results, "latency_allocation", TITLE, render_markdown(results))


if __name__ == "__main__":
    main()
