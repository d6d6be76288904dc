"""Which spiral recipe, if any, beats one-shot prune + KD at the same budget? A method search.

Every variant compresses the cached ``compare.py`` teacher (quick profile: half-width VGG-BN on the
CIFAR-10 subset) to 20% and 10% of its MACs with the same 12 training epochs (round 5: 24 epochs for
the winner, its one-shot baseline and its labels-only stages alike), the same optimizer and KD settings as ``compare.py``,
on several seeds. Variants differ in what the issue asks to
search: how the pruning is split into stages (count, epochs per stage, constant / cubic (AGP)
schedules), the channel importance (L1, first-order Taylor on the distillation loss, global
ranking), the teacher (original or previous stage) and the stage learning rate. One-shot
variants are the same recipe with one stage, so each spiral variant has a matching baseline.

Runs are independent processes (``--workers``), each cached as it finishes under
``cache/<profile>/search/teacher_<sha>/<variant>/t<target>_s<seed>/result.json``: an interrupted search
continues. Every run records its teacher (top-1 and file hash): runs of a retrained teacher join the
search file beside the earlier ones, and rows pair and compare runs of the same teacher only.
``--accelerator gpu`` trains on a GPU (several workers share it); accuracy does not depend on the
device beyond seed noise, and nothing here measures speed.

Output: ``results/search.json`` (every run, and per variant and target the mean, the std over seeds
and the paired difference to ``oneshot_kd`` on the same seeds) and a table in ``RESULTS.md``.

Run:  python benchmarks/spiral_search.py --workers 2                      (CPU: hours)
      python benchmarks/spiral_search.py --accelerator gpu --workers 12   (one GPU: minutes)
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lightning_spiral import KDLoss  # noqa: E402
from lightning_spiral.spiral.describe import file_sha256  # noqa: E402

from compare import Benchmark  # noqa: E402
from profiles import DEFAULT_DATA, PROFILES, TEACHER_SEED  # noqa: E402
from results_io import in_results_dir, update_results_section, write_json  # noqa: E402

BASELINE = "oneshot_kd"
TITLE = "spiral_search.py — the method search"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One compression recipe: stage epochs per target, and how each stage prunes and learns."""

    stages: dict[float, list[int]]
    schedule: str = "constant"
    importance: str = "l1"
    global_pruning: bool = False
    teacher: str = "original"
    lr: float | None = None  # None: the quick profile's stage learning rate
    temperature: float | None = None  # None: the quick profile's KD temperature
    alpha: float | None = None  # None: the quick profile's KD weight (1 - alpha on the labels)
    # the validation split's seed; None: each run's seed, whose split the cached teacher partly trained on
    # (its validation top-1 is then inflated and not shown); TEACHER_SEED: a split the teacher never saw
    split_seed: int | None = None
    baseline: str = BASELINE  # the one-shot + KD runs this variant is paired with (same seeds, same split)
    distill: bool = True  # False: every stage fine-tunes on the labels alone (compare.py's iterative_ft)
    mixing: str | None = None  # mixup | cutmix: function matching (teacher and student see the same mixed images)
    waypoint_lr_scale: float = 1.0  # the waypoint stages' learning rate, as a fraction of lr

    def epochs(self, target: float) -> list[int]:
        """Epochs of each stage at ``target``; a target without its own split (smoke tests) gets 1-epoch stages."""
        return self.stages.get(target) or [1] * len(self.stages[max(self.stages)])

    def describe(self, target: float) -> str:
        parts = [f"stages {self.epochs(target)}", self.schedule, self.importance + (" global" if self.global_pruning else ""),
                 f"teacher {self.teacher}", f"lr {PROFILES['quick'].stage_lr if self.lr is None else self.lr}"]
        if not self.distill:
            parts.append("no KD (labels only)")
        elif self.temperature is not None or self.alpha is not None:
            t, a = self.kd_settings(PROFILES["quick"].temperature, PROFILES["quick"].alpha)
            parts.append(f"KD T {t:g} alpha {a:g}")
        if self.mixing is not None:
            parts.append(f"{self.mixing} function matching")
        if self.waypoint_lr_scale != 1.0:
            parts.append(f"waypoints at {self.waypoint_lr_scale:g} × lr")
        if self.split_seed is not None:
            parts.append("teacher's validation split")
        return ", ".join(parts)

    def kd_settings(self, temperature: float, alpha: float) -> tuple[float, float]:
        """This variant's KD temperature and weight, the profile's where it sets none."""
        return (temperature if self.temperature is None else self.temperature,
                alpha if self.alpha is None else self.alpha)


ONE = {0.2: [12], 0.1: [12]}
VARIANTS: dict[str, Variant] = {
    # baselines: one pruning step, then 12 epochs of KD
    "oneshot_kd": Variant(ONE),
    "oneshot_kd_taylor": Variant(ONE, importance="taylor"),
    "oneshot_kd_global": Variant(ONE, global_pruning=True),
    "oneshot_kd_lr05": Variant(ONE, lr=0.05),
    # compare.py's spiral_original
    "spiral": Variant({0.2: [3, 9], 0.1: [2, 2, 8]}),
    # many short pruning stages, one long final stage
    "spiral_short": Variant({0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}),
    # AGP: front-loaded cut, gentle last stages
    "spiral_cubic": Variant({0.2: [2, 2, 8], 0.1: [2, 2, 2, 6]}, schedule="cubic"),
    # importance that sees the distillation loss
    "spiral_taylor": Variant({0.2: [3, 9], 0.1: [2, 2, 8]}, importance="taylor"),
    "spiral_short_taylor": Variant({0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, importance="taylor"),
    # global ranking re-decided on distilled weights at every stage
    "spiral_global": Variant({0.2: [3, 9], 0.1: [2, 2, 8]}, global_pruning=True),
    "spiral_lr05": Variant({0.2: [3, 9], 0.1: [2, 2, 8]}, lr=0.05),
    "spiral_previous": Variant({0.2: [3, 9], 0.1: [2, 2, 8]}, teacher="previous"),
    # round 2, around the cubic schedule (round 1's winner)
    "spiral_cubic_two": Variant({0.2: [2, 10], 0.1: [2, 10]}, schedule="cubic"),
    "spiral_cubic_short": Variant({0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, schedule="cubic"),
    "spiral_cubic_lr05": Variant({0.2: [2, 2, 8], 0.1: [2, 2, 2, 6]}, schedule="cubic", lr=0.05),
    "spiral_cubic_global": Variant({0.2: [2, 2, 8], 0.1: [2, 2, 2, 6]}, schedule="cubic", global_pruning=True),
    "spiral_linear": Variant({0.2: [2, 2, 8], 0.1: [2, 2, 2, 6]}, schedule="linear"),
    "spiral_cubic_two_lr05": Variant({0.2: [2, 10], 0.1: [2, 10]}, schedule="cubic", lr=0.05),
    "spiral_cubic_short_lr05": Variant({0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, schedule="cubic", lr=0.05),
    # round 3, around round 2's winner: learning rate, stage count, KD temperature and weight
    "spiral_cubic_short_lr03": Variant({0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, schedule="cubic", lr=0.03),
    "spiral_cubic_short_lr10": Variant({0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, schedule="cubic", lr=0.1),
    "spiral_cubic_three_lr05": Variant({0.2: [1, 1, 10], 0.1: [1, 1, 1, 9]}, schedule="cubic", lr=0.05),
    "spiral_cubic_six_lr05": Variant({0.2: [1, 1, 1, 1, 1, 7], 0.1: [1, 1, 1, 1, 1, 1, 6]}, schedule="cubic", lr=0.05),
    "spiral_cubic_short_lr05_a1": Variant({0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, schedule="cubic", lr=0.05, alpha=1.0),
    "spiral_cubic_short_lr05_t2": Variant({0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, schedule="cubic", lr=0.05, temperature=2.0),
    "spiral_cubic_short_lr05_t8": Variant({0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, schedule="cubic", lr=0.05, temperature=8.0),
    "oneshot_kd_lr03": Variant(ONE, lr=0.03),
    "oneshot_kd_a1": Variant(ONE, alpha=1.0),
}
# round 4: the best recipes again, with the validation split held out from the teacher too (clean
# validation top-1 for the choice of the default), each paired with one-shot + KD on the same split
VALIDATION_RERUN = ("oneshot_kd", "oneshot_kd_a1", "spiral_cubic_short_lr03", "spiral_cubic_short_lr05", "spiral_cubic_three_lr05",
                    "spiral_cubic_six_lr05", "spiral_cubic_short_lr05_a1", "spiral_cubic_short_lr05_t2")
VARIANTS |= {f"{name}_vsplit": dataclasses.replace(VARIANTS[name], split_seed=TEACHER_SEED, baseline=f"{BASELINE}_vsplit")
             for name in VALIDATION_RERUN}
# round 5: twice the budget (24 epochs) for the winner and its baseline: does the teacher gap close
# when every method trains longer? Waypoints stay one epoch; the final stage takes the extra epochs.
LONG = {0.2: [24], 0.1: [24]}
VARIANTS |= {
    "oneshot_kd_e24_vsplit": Variant(LONG, split_seed=TEACHER_SEED, baseline="oneshot_kd_e24_vsplit"),
    "spiral_cubic_short_lr03_e24_vsplit": Variant({0.2: [1, 1, 1, 21], 0.1: [1, 1, 1, 1, 20]}, schedule="cubic", lr=0.03,
                                                  split_seed=TEACHER_SEED, baseline="oneshot_kd_e24_vsplit"),
}
# the same stages and lr fine-tuned on labels only (compare.py's iterative_ft): what distillation adds at 24 epochs
VARIANTS["iterative_ft_e24_vsplit"] = dataclasses.replace(VARIANTS["spiral_cubic_short_lr03_e24_vsplit"], distill=False)
# round 6 (issue 19): function matching, CutMix (alpha 1) in every stage, for the 24-epoch recipe and its baseline alike
VARIANTS |= {f"{name}_cutmix": dataclasses.replace(VARIANTS[name], mixing="cutmix", baseline="oneshot_kd_e24_vsplit_cutmix")
             for name in ("oneshot_kd_e24_vsplit", "spiral_cubic_short_lr03_e24_vsplit")}
# round 6: the waypoints at 0.3 × lr (0.009, near one-shot's best 0.01), the last stage at the full 0.03
VARIANTS["spiral_cubic_short_lr03_e24_vsplit_wp03"] = dataclasses.replace(VARIANTS["spiral_cubic_short_lr03_e24_vsplit"], waypoint_lr_scale=0.3)


def teacher_record(teacher_file: Path) -> dict[str, Any]:
    """Which teacher a run distilled from: its test top-1 (``result.json`` beside it) and its file's SHA-256."""
    return {"teacher_top1": json.loads(teacher_file.with_name("result.json").read_text())["top1"],
            "teacher_sha256": file_sha256(teacher_file)}


def run_one(profile: str, data: str, cache_dir: str, teacher_file: str, teacher: dict[str, Any], accelerator: str,
            name: str, target: float, seed: int) -> dict[str, Any]:
    """One (variant, target, seed) in a worker process, distilling from ``teacher`` (its :func:`teacher_record`); cached as ``result.json``."""
    torch.set_num_threads(1)
    benchmark = Benchmark(profile, Path(data), Path(cache_dir), HERE / "results", [], accelerator=accelerator,
                          teacher_file=Path(teacher_file))
    out = benchmark.cache / "search" / f"teacher_{teacher['teacher_sha256'][:12]}" / name / f"t{target}_s{seed}"
    if (out / "result.json").is_file():
        return json.loads((out / "result.json").read_text())
    v = VARIANTS[name]
    temperature, alpha = v.kd_settings(benchmark.profile.temperature, benchmark.profile.alpha)
    start = time.perf_counter()
    result = benchmark.spiral(target, seed, out, stages=v.epochs(target), teacher=v.teacher, distill=v.distill,
                              loss=KDLoss(temperature=temperature, alpha=alpha), schedule=v.schedule,
                              importance=v.importance, global_pruning=v.global_pruning, lr=v.lr, split_seed=v.split_seed,
                              mixing=v.mixing, waypoint_lr_scale=v.waypoint_lr_scale)
    result.update(teacher, variant=name, target=target, seed=seed, total_wall_s=time.perf_counter() - start,
                  model_path=os.path.relpath(result["model_path"], cache_dir))  # no machine paths in results/search.json
    result.pop("stages")
    write_json(out / "result.json", result)
    return result


def by_teacher_and_target(runs: list[dict[str, Any]]) -> list[tuple[float, float, list[dict[str, Any]]]]:
    """The runs split by teacher (its top-1, in order) and target (largest first): only these are compared."""
    groups: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for run in sorted(runs, key=lambda r: (r["teacher_top1"], -r["target"])):
        groups.setdefault((run["teacher_top1"], run["target"]), []).append(run)
    return [(teacher, target, same) for (teacher, target), same in groups.items()]


def summarise(runs: list[dict[str, Any]], teacher_macs: int | None) -> list[dict[str, Any]]:
    """Per teacher, target and variant: mean ± std of test top-1 and the paired difference to the baseline."""
    rows = []
    for teacher_top1, target, same in by_teacher_and_target(runs):
        for name, variant in VARIANTS.items():
            baseline = {r["seed"]: r["top1"] for r in same if r["variant"] == variant.baseline}
            mine = sorted((r for r in same if r["variant"] == name), key=lambda r: r["seed"])
            if not mine:
                continue
            top1 = [r["top1"] for r in mine]
            val = [r["val_top1"] for r in mine if r.get("val_top1") is not None and variant.split_seed is not None]
            paired = [r["top1"] - baseline[r["seed"]] for r in mine if r["seed"] in baseline]
            rows.append({
                "variant": name, "target": target, "teacher_top1": teacher_top1, "recipe": variant.describe(target),
                "baseline": variant.baseline, "seeds": [r["seed"] for r in mine],
                "top1": statistics.mean(top1), "top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
                "top1_per_seed": top1, "val_top1": statistics.mean(val) if len(val) == len(mine) else None,
                "vs_teacher": statistics.mean(top1) - teacher_top1,
                "vs_baseline": statistics.mean(paired) if paired else None,
                "vs_baseline_std": statistics.stdev(paired) if len(paired) > 1 else None,
                "macs": mine[0]["macs"], "macs_ratio": None if not teacher_macs else mine[0]["macs"] / teacher_macs,
                "train_s": statistics.mean(r["wall_s"] for r in mine),
            })
    return rows


def pooled(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each round-4 recipe pooled with its round-3 runs: both validation splits, each run paired with one-shot + KD on its split."""
    rows = []
    for teacher_top1, target, same in by_teacher_and_target(runs):
        for name in VALIDATION_RERUN:
            mine, base = [], []
            for variant in (name, f"{name}_vsplit"):
                baseline = {r["seed"]: r["top1"] for r in same if r["variant"] == VARIANTS[variant].baseline}
                pairs = [(r["top1"], baseline[r["seed"]]) for r in same if r["variant"] == variant and r["seed"] in baseline]
                mine += [a for a, _ in pairs]
                base += [b for _, b in pairs]
            if len(mine) < 2:
                continue
            diffs = [a - b for a, b in zip(mine, base)]
            rows.append({"variant": name, "target": target, "teacher_top1": teacher_top1, "runs": len(mine),
                         "top1": statistics.mean(mine), "top1_std": statistics.stdev(mine),
                         "baseline_top1": statistics.mean(base), "baseline_std": statistics.stdev(base),
                         "vs_baseline": statistics.mean(diffs), "vs_baseline_std": statistics.stdev(diffs),
                         "vs_baseline_sem": statistics.stdev(diffs) / len(diffs) ** 0.5, "vs_teacher": statistics.mean(mine) - teacher_top1})
    return rows


def render_markdown(results: dict[str, Any]) -> str:
    commands = "; ".join(f"`{c}`" for c in results["commands"])
    teachers = collections.Counter(r["teacher_top1"] for r in results["runs"])
    teachers_line = ", ".join(f"{100 * top1:.2f}% ({count} runs)" for top1, count in sorted(teachers.items()))
    lines = [f"Commands (device in brackets): {commands} — last {results['date'][:10]}, torch "
             f"{results['torch']}. Teachers: {teachers_line}; "
             "a run is compared only with runs of its own teacher. Test top-1 on the full test split; "
             f"'vs {BASELINE}' is the mean ± std of the per-seed difference to one-shot + KD (same seeds, same data order; "
             f"`_vsplit` rows against `{BASELINE}_vsplit`). Validation top-1 only for `_vsplit` runs, whose validation split "
             "the teacher never trained on (elsewhere it is inflated for seeds other than 0).", ""]
    for teacher_top1, target in dict.fromkeys((r["teacher_top1"], r["target"]) for r in results["rows"]):
        lines += [f"**Teacher {100 * teacher_top1:.2f}%, target {target:.0%} of its MACs**", "",
                  f"| variant | recipe | seeds | top-1 % | Δ vs teacher | vs {BASELINE} (pts) | val top-1 % | MACs % | train s |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        same = [r for r in results["rows"] if (r["teacher_top1"], r["target"]) == (teacher_top1, target)]
        for row in sorted(same, key=lambda r: -r["top1"]):
            paired = "–" if row["vs_baseline"] is None else f"{100 * row['vs_baseline']:+.2f} ± {100 * (row['vs_baseline_std'] or 0):.2f}"
            macs = "–" if row["macs_ratio"] is None else f"{100 * row['macs_ratio']:.1f}"
            val = "–" if row.get("val_top1") is None else f"{100 * row['val_top1']:.2f}"
            lines.append(f"| {row['variant']} | {row['recipe']} | {len(row['seeds'])} | {100 * row['top1']:.2f} ± "
                         f"{100 * row['top1_std']:.2f} | {100 * row['vs_teacher']:+.2f} | {paired} | {val} | {macs} | {row['train_s']:.0f} |")
        lines.append("")
    if results.get("pooled"):
        lines += ["**Pooled: rounds 3 and 4 together** (the same recipe on both validation splits; each run paired with "
                  f"{BASELINE} on its own split and seed)", "",
                  f"| variant | teacher % | target | runs | top-1 % | {BASELINE} % | paired Δ (pts): mean ± std (s.e.) | Δ vs teacher |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for row in results["pooled"]:
            lines.append(f"| {row['variant']} | {100 * row['teacher_top1']:.2f} | {row['target']:.0%} | {row['runs']} | {100 * row['top1']:.2f} ± {100 * row['top1_std']:.2f} | "
                         f"{100 * row['baseline_top1']:.2f} ± {100 * row['baseline_std']:.2f} | {100 * row['vs_baseline']:+.2f} ± "
                         f"{100 * row['vs_baseline_std']:.2f} ({100 * row['vs_baseline_sem']:.2f}) | {100 * row['vs_teacher']:+.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=["quick", "resnet20", "smoke"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=HERE / "cache")
    parser.add_argument("--teacher", type=Path, default=None, help="a trained teacher model.pt (result.json beside it); default: compare.py's cache")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--targets", nargs="+", type=float, default=None, help="default: the profile's targets")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "search.json")
    parser.add_argument("--report-only", action="store_true", help="train nothing: summarise the runs already in --out")
    args = parser.parse_args(argv)
    if args.report_only:
        if not args.out.is_file():
            parser.error(f"--report-only: {str(args.out)!r} holds no search to summarise")
        report(json.loads(args.out.read_text()), args.out, args.profile)
        return
    if not args.data.is_file():
        parser.error(f"--data {str(args.data)!r} does not exist (expected e.g. ../shared/data/cifar10_subset.npz)")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    benchmark = Benchmark(args.profile, args.data, args.cache_dir, HERE / "results", [], teacher_file=args.teacher)
    teacher_path = benchmark.teacher()  # trained and cached here, once, before the workers start
    targets = args.targets or benchmark.profile.targets
    bad = [t for t in targets if not 0 < t < 1]
    if bad:
        parser.error(f"--targets must be MACs ratios in (0, 1), got {bad}")
    tasks = [(name, target, seed) for seed in args.seeds for name in args.variants for target in targets]
    common = (args.profile, str(args.data), str(args.cache_dir), str(teacher_path), teacher_record(teacher_path), args.accelerator)
    device = torch.cuda.get_device_name(0) if args.accelerator == "gpu" else f"CPU ({os.cpu_count()} cores)"
    # earlier invocations' runs in --out are kept (they may come from another machine's cache); a rerun with the same teacher replaces its own
    earlier = json.loads(args.out.read_text()) if args.out.is_file() else {}
    runs = {run_key(r): r for r in earlier.get("runs", [])}
    command = " ".join(["spiral_search.py", *(argv if argv is not None else sys.argv[1:])])
    commands = [*earlier.get("commands", []), f"{command} ({device})"]

    def write() -> None:
        report(earlier | {
            "commands": commands, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
            "variants": {n: dataclasses.asdict(v) | {"stages": {str(t): e for t, e in v.stages.items()}} for n, v in VARIANTS.items()},
            "runs": list(runs.values()),
        }, args.out, args.profile)

    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = {pool.submit(run_one, *common, *task): task for task in tasks}
        for future in concurrent.futures.as_completed(futures):
            name, target, seed = futures[future]
            try:
                result = future.result()
            except Exception as error:  # one failed recipe must not lose the others: report it and go on
                print(f"[search] {name} target {target} seed {seed} FAILED: {error!r}", flush=True)
                continue
            runs[run_key(result)] = result
            print(f"[search] {name:20s} target {target:.2f} seed {seed}: top-1 {result['top1']:.4f}, "
                  f"MACs {result['macs']:,}, {result['wall_s']:.0f} s", flush=True)
            write()


def report(results: dict[str, Any], out: Path, profile: str) -> None:
    """Summarise ``results["runs"]`` into ``rows`` and ``pooled``, write ``out`` and (quick profile, results/) RESULTS.md."""
    runs = results["runs"]
    results |= {"rows": summarise(runs, teacher_macs(runs)), "pooled": pooled(runs)}
    write_json(out, results)
    if in_results_dir(out) and profile == "quick":
        update_results_section(HERE / "RESULTS.md", "search", TITLE, render_markdown(results))


def run_key(run: dict[str, Any]) -> tuple[str, float, int, float]:
    """A run's place in the search file: a rerun with the same teacher replaces it, one with another teacher joins it."""
    return run["variant"], run["target"], run["seed"], run["teacher_top1"]


def teacher_macs(runs: list[dict[str, Any]]) -> int | None:
    """The teacher's MACs, from a finished run's stage records (None before any run finished)."""
    return next((r["teacher_macs"] for r in runs if "teacher_macs" in r), None)


if __name__ == "__main__":
    main()
