"""Does spiral compression beat the alternatives at the same budget? One table on real CIFAR-10 images.

One teacher is trained once and cached (keyed by a hash of its settings). Every method then gets the
same number of training epochs after the teacher and the same optimizer recipe (SGD momentum 0.9,
Nesterov, weight decay 5e-4, cosine learning rate restarting per stage), and compresses the teacher
to the same MACs target (20% and 10% of its MACs):

| method            | what it does                                                                |
| ----------------- | --------------------------------------------------------------------------- |
| `spiral_original` | lightning-spiral: N stages of prune -> distill, every stage from the teacher |
| `spiral_previous` | the same, each stage distilled from the previous stage's student            |
| `iterative_ft`    | the same stages, fine-tuned on labels only (what distillation adds)         |
| `oneshot_kd`      | one pruning step to the target, then distillation (what the spiral adds)    |
| `oneshot_ft`      | one pruning step, then fine-tuning on labels only                          |
| `modelpruning`    | Lightning's `ModelPruning`, l1_unstructured masks, same non-zero parameters  |
| `scratch`         | the final pruned architecture, re-initialised and trained on labels         |
| `scratch_kd`      | the same architecture from scratch with distillation                        |

Each (method, target, seed) run is cached in ``--cache-dir`` as it finishes, so an interrupted run
continues where it stopped. Latency is measured at the end, in one pass, from the saved models
(median of 20 runs, 2 threads, batch 1 and 64), with the package's own measurement code.

The profiles are in ``profiles.py``; the tables, plot and RESULTS.md sections are written by ``results_io.py``.

Run:  python benchmarks/compare.py --profile quick   (about 60-80 minutes on a 2-core CPU)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
import torch.nn as nn
from lightning.pytorch.callbacks import ModelPruning

from lightning_spiral import KDLoss, PruningCallback, Spiral, SpiralModule, load_model, save_model
from lightning_spiral.atomic import atomic_write_bytes
from lightning_spiral.data import NpzDataModule, SST2DataModule
from lightning_spiral.distill import AttentionTransferLoss, DKDLoss, FitNetLoss, RKDLoss, WeightedSum
from lightning_spiral.io import rebuild
from lightning_spiral.measure import count_macs, file_size
from lightning_spiral.models import build_model
from lightning_spiral.models.spec import random_input, spec_of
from lightning_spiral.records import machine_info
from lightning_spiral.timing import interleaved_latency, side_by_side

from profiles import DEFAULT_DATA, DEFAULT_TEXT, DISTILL_METHODS, HERE, METHODS, PROFILES, TEACHER_SEED
from results_io import plot, render_markdown, update_results_section, write_json


# ----------------------------------------------------------------------------------------- helpers
def trainer_factory(**kwargs: Any) -> L.Trainer:
    """A quiet Trainer, on the CPU unless ``accelerator`` says otherwise (Spiral adds max_epochs, callbacks, a logger)."""
    defaults = dict(accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
                    enable_checkpointing=False, logger=False)
    return L.Trainer(**{**defaults, **kwargs})


def sgd(lr: float, name: str = "sgd") -> Callable[..., torch.optim.Optimizer]:
    """The benchmark's optimizer at ``lr``: SGD with Nesterov momentum, or AdamW (``name="adamw"``, transformers)."""
    if name == "adamw":
        return functools.partial(torch.optim.AdamW, lr=lr, weight_decay=0.01)
    return functools.partial(torch.optim.SGD, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)


COSINE = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR)


def example_input(model: nn.Module) -> torch.Tensor:
    """A batch of one sample of the model's input shape and dtype (from its spec)."""
    return random_input(model, spec_of(model).input_shape, 1)


class Benchmark:
    """Runs, caches and reports every (method, target, seed) of one profile."""

    def __init__(self, profile_name: str, data_path: Path, cache_dir: Path, results_dir: Path, methods: list[str],
                 *, accelerator: str = "cpu", teacher_file: Path | None = None) -> None:
        self.name = profile_name
        self.profile = PROFILES[profile_name]
        self.data_path = data_path
        self.cache = cache_dir / profile_name
        self.results_dir = results_dir
        self.methods = methods
        self.accelerator = accelerator
        self.teacher_file = teacher_file  # a trained teacher (model.pt + result.json beside it) instead of the cache's

    def datamodule(self, seed: int, split_seed: int | None = None) -> NpzDataModule:
        """The data of one run. The validation split is drawn with ``split_seed`` (default: ``seed``).

        The cached teacher trained on seed 0's split, so for other seeds most validation images are
        teacher training images and validation top-1 is inflated; runs whose validation top-1 takes a
        decision (``spiral_search.py``'s ranking) pass ``split_seed=TEACHER_SEED``. Test top-1 is
        unaffected either way; compare.py keeps the per-seed split its cached runs were trained on.
        """
        p = self.profile
        if p.data == "sst2":  # the teacher's split for every seed: its vocabulary fixes the token ids
            return SST2DataModule(self.data_path, max_length=64, batch_size=p.batch_size, val_fraction=0.05,
                                  seed=TEACHER_SEED, train_subset=p.train_subset)
        return NpzDataModule(self.data_path, batch_size=p.batch_size, val_fraction=0.1,
                             seed=seed if split_seed is None else split_seed, augment=True,
                             train_subset=p.train_subset, test_subset=p.test_subset)

    # ------------------------------------------------------------------------------ the teacher
    def teacher_path(self) -> Path:
        if self.teacher_file is not None:
            return self.teacher_file
        p = self.profile
        key = json.dumps([p.model, p.model_kwargs, p.teacher_epochs, p.teacher_lr, p.batch_size, p.train_subset,
                          str(self.data_path.resolve())], sort_keys=True)
        return self.cache / f"teacher_{hashlib.sha256(key.encode()).hexdigest()[:12]}" / "model.pt"

    def teacher(self) -> Path:
        """Train the teacher once (seed ``TEACHER_SEED``, its validation split too) or reuse the cached one."""
        path = self.teacher_path()
        if path.with_name("result.json").is_file():
            return path
        p = self.profile
        L.seed_everything(TEACHER_SEED, workers=True, verbose=False)
        data = self.datamodule(seed=TEACHER_SEED)
        text = {"vocab_size": data.vocab_size} if getattr(data, "vocab_size", None) else {}
        model = build_model(p.model, num_classes=data.num_classes, input_shape=data.input_shape, **p.model_kwargs, **text)
        module = SpiralModule(model, num_classes=data.num_classes, optimizer=sgd(p.teacher_lr, p.optimizer), scheduler=COSINE)
        trainer = trainer_factory(max_epochs=p.teacher_epochs, accelerator=self.accelerator)
        start = time.perf_counter()
        trainer.fit(module, datamodule=data)
        wall = time.perf_counter() - start
        top1 = trainer.test(module, datamodule=data, verbose=False)[0]["test/top1"]
        save_model(model, path)
        write_json(path.with_name("result.json"), {"top1": top1, "wall_s": wall, "model_path": str(path)})
        return path

    # -------------------------------------------------------------------------------- one run
    def run_dir(self, method: str, target: float, seed: int) -> Path:
        return self.cache / method / f"t{target}_s{seed}"

    def run(self, method: str, target: float, seed: int) -> dict[str, Any]:
        """Run (or reuse) one method at one target and seed; return its result record."""
        out = self.run_dir(method, target, seed)
        if (out / "result.json").is_file():
            return json.loads((out / "result.json").read_text())
        start = time.perf_counter()
        result = getattr(self, f"run_{method}")(target, seed, out)
        result.update(method=method, target=target, seed=seed, total_wall_s=time.perf_counter() - start)
        write_json(out / "result.json", result)
        print(f"[compare] {method:16s} target {target:.2f} seed {seed}: top-1 {result['top1']:.4f}, "
              f"MACs {result['macs']:,}, {result['wall_s']:.0f} s", flush=True)
        return result

    def spiral(self, target: float, seed: int, out: Path, *, stages: list[int], teacher: str, distill: bool,
               loss: nn.Module | None = None, schedule: str = "constant", importance: str = "l1",
               global_pruning: bool = False, lr: float | None = None, split_seed: int | None = None,
               mixing: str | None = None, waypoint_lr_scale: float = 1.0) -> dict[str, Any]:
        """A lightning-spiral run with the teacher from the cache; ``len(stages)`` stages reach ``target``.

        ``schedule="constant"`` keeps the same fraction of MACs at every stage (the geometric schedule);
        the other schedules of :func:`lightning_spiral.pruning.schedule.stage_macs_ratios` front- or
        back-load the cut. ``lr`` overrides the profile's stage learning rate and ``split_seed`` the
        validation split's seed, ``mixing`` (mixup / cutmix) the function matching of every stage and
        ``waypoint_lr_scale`` the learning rate of a schedule's waypoints (all used by the method search).
        """
        p = self.profile
        per_stage = target ** (1 / len(stages))  # equal MACs ratio per stage lands on the target
        spiral = Spiral(
            model=None,
            teacher_checkpoint=str(self.teacher()),
            datamodule=self.datamodule(seed, split_seed),
            trainer=functools.partial(trainer_factory, accelerator=self.accelerator),
            # a schedule gives every stage its own MACs target; constant: the same ratio per stage
            pruning=functools.partial(PruningCallback, target_macs_ratio=per_stage if schedule == "constant" else None,
                                      importance=importance, global_pruning=global_pruning, verbose=0),
            loss=(loss or KDLoss(temperature=p.temperature, alpha=p.alpha)) if distill else None,
            optimizer=sgd(p.stage_lr if lr is None else lr, p.optimizer),
            scheduler=COSINE,
            schedule=schedule,
            teacher=teacher,
            # constant: stop once within 2% of the target; a schedule ends exactly on it (<= target)
            target_macs_ratio=min(1.0, target * 1.02) if schedule == "constant" else target,
            max_stages=len(stages),
            max_accuracy_drop=1.0,  # equal budgets: no rollback inside the benchmark
            stage_epochs=stages,
            output_dir=str(out),
            overwrite=True,  # a run without result.json was interrupted: redo it
            seed=seed,
            mixing=mixing,
            waypoint_lr_scale=waypoint_lr_scale,
            latency_repeats=2,  # latency is measured later, in one quiet pass
        )
        report = spiral.run()
        final = report.final
        return {"top1": final.top1, "params": final.params, "macs": final.macs, "size_bytes": final.size_bytes,
                "model_path": str(out / final.model_path), "wall_s": sum(s.wall_s for s in report.stages),
                "teacher_macs": report.teacher.macs, "val_top1": final.val_top1,
                "stages": [dataclasses.asdict(s) for s in report.stages]}

    def staged(self, target: float, seed: int, out: Path, *, teacher: str, distill: bool,
               loss: nn.Module | None = None) -> dict[str, Any]:
        """The profile's multi-stage recipe (stages, schedule, learning rate) at ``target``."""
        p = self.profile
        return self.spiral(target, seed, out, stages=p.stage_epochs[target], teacher=teacher, distill=distill, loss=loss,
                           schedule=p.spiral_schedule, lr=p.spiral_lr)

    def run_spiral_original(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        return self.staged(target, seed, out, teacher="original", distill=True)

    def run_spiral_previous(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        return self.staged(target, seed, out, teacher="previous", distill=True)

    def distill_variant(self, target: float, seed: int, out: Path, loss: nn.Module) -> dict[str, Any]:
        return self.staged(target, seed, out, teacher="original", distill=True, loss=loss)

    def kd_plus(self, name: str, weight: float, term: nn.Module) -> WeightedSum:
        """The profile's KD loss plus one more term."""
        kd = KDLoss(temperature=self.profile.temperature, alpha=self.profile.alpha)
        return WeightedSum(weights={"kd": 1.0, name: weight}, losses={"kd": kd, name: term})

    def run_spiral_dkd(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        loss = DKDLoss(alpha=1.0, beta=8.0, temperature=self.profile.temperature, ce_weight=1.0)
        return self.distill_variant(target, seed, out, loss)

    def run_spiral_kd_at(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        return self.distill_variant(target, seed, out, self.kd_plus("at", 1000.0, AttentionTransferLoss(self.profile.feature_paths["at"])))

    def run_spiral_fitnet(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        return self.distill_variant(target, seed, out, self.kd_plus("hint", 1.0, FitNetLoss(self.profile.feature_paths["hint"])))

    def run_spiral_rkd(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        return self.distill_variant(target, seed, out, self.kd_plus("rkd", 1.0, RKDLoss(None)))

    def run_iterative_ft(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        return self.staged(target, seed, out, teacher="original", distill=False)

    def run_oneshot_kd(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        return self.spiral(target, seed, out, stages=[self.profile.budget(target)], teacher="original", distill=True)

    def run_oneshot_ft(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        return self.spiral(target, seed, out, stages=[self.profile.budget(target)], teacher="original", distill=False)

    def train_student(self, student: nn.Module, epochs: int, seed: int, *, distill: bool, callbacks: list[L.Callback]) -> tuple[float, float]:
        """Train ``student`` for ``epochs`` with the stage recipe; return (test top-1, wall seconds)."""
        p = self.profile
        L.seed_everything(seed, workers=True, verbose=False)
        data = self.datamodule(seed)
        teacher = load_model(self.teacher()) if distill else None
        module = SpiralModule(student, teacher, loss=KDLoss(temperature=p.temperature, alpha=p.alpha) if distill else None,
                              num_classes=data.num_classes, optimizer=sgd(p.stage_lr, p.optimizer), scheduler=COSINE)
        trainer = trainer_factory(max_epochs=epochs, callbacks=callbacks, accelerator=self.accelerator)
        start = time.perf_counter()
        trainer.fit(module, datamodule=data)
        wall = time.perf_counter() - start
        return trainer.test(module, datamodule=data, verbose=False)[0]["test/top1"], wall

    def run_modelpruning(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        """Lightning's ModelPruning: global L1 unstructured masks with the one-shot model's non-zero count.

        Used as its docs show: masks applied at the end of epoch 0, kept while the remaining epochs
        fine-tune on labels, made permanent at the end (no lottery-ticket rewind).
        """
        structured = json.loads((self.run_dir("oneshot_ft", target, seed) / "result.json").read_text())
        student = load_model(self.teacher()).train()
        weights = [(m, "weight") for m in student.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        prunable = sum(m.weight.numel() for m, _ in weights)
        total = sum(q.numel() for q in student.parameters())
        amount = (total - structured["params"]) / prunable
        pruning = ModelPruning("l1_unstructured", parameters_to_prune=weights, amount=lambda epoch: amount if epoch == 0 else 0.0,
                               use_global_unstructured=True, make_pruning_permanent=True,
                               use_lottery_ticket_hypothesis=False, verbose=0)
        top1, wall = self.train_student(student, self.profile.budget(target), seed, distill=False, callbacks=[pruning])
        save_model(student, out / "model.pt")
        nonzero = sum(int((q != 0).sum()) for q in student.parameters())
        return {"top1": top1, "params": nonzero, "macs": count_macs(student, example_input(student)),
                "size_bytes": file_size(out / "model.pt"), "model_path": str(out / "model.pt"), "wall_s": wall,
                "mask_amount": amount}

    def scratch(self, target: float, seed: int, out: Path, *, distill: bool) -> dict[str, Any]:
        """The one-shot pruned architecture with fresh weights (``reset_parameters`` per layer)."""
        pruned = load_model(self.run_dir("oneshot_ft", target, seed) / "stage_1" / "model.pt")
        student = rebuild(spec_of(pruned))
        L.seed_everything(seed, workers=True, verbose=False)
        for module in student.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        top1, wall = self.train_student(student.train(), self.profile.budget(target), seed, distill=distill, callbacks=[])
        save_model(student, out / "model.pt")
        return {"top1": top1, "params": sum(q.numel() for q in student.parameters()),
                "macs": count_macs(student, example_input(student)), "size_bytes": file_size(out / "model.pt"),
                "model_path": str(out / "model.pt"), "wall_s": wall}

    def run_scratch(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        return self.scratch(target, seed, out, distill=False)

    def run_scratch_kd(self, target: float, seed: int, out: Path) -> dict[str, Any]:
        return self.scratch(target, seed, out, distill=True)

    # --------------------------------------------------------------------------------- the loop
    def run_all(self, seeds: list[int] | None = None) -> dict[str, Any]:
        """Train every missing run of ``seeds`` (default: the profile's), then report every finished run in the cache."""
        teacher_path = self.teacher()
        for seed in seeds or self.profile.seeds:  # every target of the first seed first: partial results cover both
            for target in self.profile.targets:
                # oneshot_ft first: modelpruning and scratch reuse its architecture and parameter count
                for method in sorted(self.methods, key=lambda m: m != "oneshot_ft"):
                    self.run(method, target, seed)
        return self.summarise(teacher_path)

    def cached(self, method: str, target: float) -> list[dict[str, Any]]:
        """Finished runs of ``method`` at ``target``, over the profile's seeds."""
        paths = [self.run_dir(method, target, seed) / "result.json" for seed in self.profile.seeds]
        return [json.loads(path.read_text()) for path in paths if path.is_file()]

    def summarise(self, teacher_path: Path) -> dict[str, Any]:
        """Aggregate finished seeds, measure latency of every final model in one pass, write JSON/markdown/plot."""
        p = self.profile
        teacher = load_model(teacher_path)
        shape = spec_of(teacher).input_shape

        finished = [(method, target, runs) for target in p.targets for method in METHODS + DISTILL_METHODS
                    if (runs := self.cached(method, target))]  # every finished run in the cache, whatever was asked now
        models = {"teacher": teacher} | {f"{method}@{target}": load_model(runs[0]["model_path"]) for method, target, runs in finished}
        # alternating rounds: a drift of the machine's speed hits the teacher and every student alike
        batches = (1, p.latency_batch)
        rounds = interleaved_latency(models, shape, batch_sizes=batches, layouts=p.latency_layouts, rounds=p.latency_rounds,
                                     repeats=p.latency_repeats, threads=2)
        timed = side_by_side(rounds, reference="teacher", batch_sizes=batches)
        teacher_record = json.loads(teacher_path.with_name("result.json").read_text())
        teacher_row = {"top1": teacher_record["top1"], "params": sum(q.numel() for q in teacher.parameters()),
                       "macs": count_macs(teacher, example_input(teacher)), "size_bytes": file_size(teacher_path),
                       **timed["teacher"], "latency_ms_rounds": rounds["teacher"], "wall_s": teacher_record["wall_s"],
                       "epochs": p.teacher_epochs}
        rows = []
        for method, target, runs in finished:
            top1s = [r["top1"] for r in runs]
            rows.append({
                "method": method, "target": target, "top1": statistics.mean(top1s),
                "top1_std": statistics.stdev(top1s) if len(top1s) > 1 else 0.0, "seeds": len(runs),
                "top1_per_seed": top1s, "params": runs[0]["params"], "macs": runs[0]["macs"],
                "macs_ratio": runs[0]["macs"] / teacher_row["macs"],
                **timed[f"{method}@{target}"], "latency_ms_rounds": rounds[f"{method}@{target}"],
                "size_bytes": runs[0]["size_bytes"], "wall_s": statistics.mean(r["wall_s"] for r in runs),
                "epochs": p.budget(target),
            })
        results = {"profile": self.name, "settings": dataclasses.asdict(p) | {"stage_epochs": {str(k): v for k, v in p.stage_epochs.items()}},
                   "data": os.path.relpath(self.data_path, HERE.parent),  # relative: no machine paths in results
                   "machine": machine_info(threads=2), "command": " ".join(sys.argv),
                   "teacher": teacher_row, "rows": rows}
        self.results_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.results_dir / f"{self.name}.json", results)
        atomic_write_bytes(self.results_dir / f"{self.name}.png", plot(results))
        update_results_section(self.results_dir.parent / "RESULTS.md", f"compare:{self.name}",
                               f"compare.py — {self.name} profile", render_markdown(results))
        return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--data", type=Path, default=None,
                        help="npz with x_train, y_train, x_test, y_test; for --profile sst2_bert the SST-2 folder")
    parser.add_argument("--cache-dir", type=Path, default=HERE / "cache")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    parser.add_argument("--methods", nargs="+", choices=METHODS + DISTILL_METHODS, default=list(METHODS))
    parser.add_argument("--distill", action="store_true",
                        help=f"the distillation sweep: spiral_original (KD) and {', '.join(DISTILL_METHODS)}")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the finished runs in the cache")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for training (latency is always measured with 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train only these of the profile's seeds (e.g. two processes of 1 thread, one seed each)")
    args = parser.parse_args(argv)
    if args.seeds and not set(args.seeds) <= set(PROFILES[args.profile].seeds):
        parser.error(f"--seeds {args.seeds}: the {args.profile!r} profile has seeds {list(PROFILES[args.profile].seeds)}")
    if args.distill:
        args.methods = ["spiral_original", *DISTILL_METHODS]
    text = PROFILES[args.profile].data == "sst2"
    args.data = args.data or (DEFAULT_TEXT if text else DEFAULT_DATA)
    if not (args.data.is_dir() if text else args.data.is_file()):
        expected = "../shared/data/sst2" if text else "../shared/data/cifar10_subset.npz"
        parser.error(f"--data {str(args.data)!r} does not exist (expected e.g. {expected})")
    if {"modelpruning", "scratch", "scratch_kd"} & set(args.methods) and "oneshot_ft" not in args.methods:
        parser.error("--methods modelpruning/scratch/scratch_kd reuse the oneshot_ft architecture: add oneshot_ft")
    torch.set_num_threads(args.threads)
    benchmark = Benchmark(args.profile, args.data, args.cache_dir, args.results_dir, args.methods)
    if args.report_only and not benchmark.teacher_path().with_name("result.json").is_file():
        parser.error(f"--report-only: no cached teacher for profile {args.profile!r} in {args.cache_dir}")
    results = benchmark.summarise(benchmark.teacher_path()) if args.report_only else benchmark.run_all(args.seeds)
    print(json.dumps({"teacher_top1": results["teacher"]["top1"],
                      "rows": [(r["method"], r["target"], round(r["top1"], 4)) for r in results["rows"]]}, indent=1))


if __name__ == "__main__":
    main()
