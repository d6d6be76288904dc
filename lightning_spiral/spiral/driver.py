"""The spiral driver: rounds of prune -> distill -> measure -> promote, as fresh Lightning Trainers.

Stage 0 trains the teacher (or loads it). Each later stage deep-copies the last kept student,
fits a new :class:`~lightning_spiral.SpiralModule` with a new ``Trainer`` (so optimizer, scheduler
and strategy wrappers never outlive a structural change) whose :class:`PruningCallback` prunes the
student in ``setup``; then the stage is measured, saved and judged on the *validation* split:

- validation top-1 more than ``max_accuracy_drop`` below the teacher's -> the stage is rolled back
  (reported with ``kept: false``) and the spiral stops at the last good stage; with a MACs
  ``schedule`` only the last stage is judged so, the ones before it are waypoints
  (:mod:`lightning_spiral.spiral.floor`);
- MACs at or below ``target_macs_ratio`` of the teacher's -> done;
- otherwise the student is promoted: it becomes the next stage's starting point and, with
  ``teacher="previous"``, also its teacher (``"original"`` keeps distilling from the first teacher,
  which measured ~1 point better on CIFAR-10, see FACTS.md).

Test top-1 is measured for the report only; it never drives a decision.

Example:
    >>> import functools, lightning.pytorch as L
    >>> from lightning_spiral import KDLoss, PruningCallback, Spiral
    >>> from lightning_spiral.data import DigitsDataModule
    >>> from lightning_spiral.models import build_model
    >>> data = DigitsDataModule()
    >>> spiral = Spiral(
    ...     model=build_model("small_cnn", num_classes=10, input_shape=data.input_shape),
    ...     datamodule=data,
    ...     trainer=functools.partial(L.Trainer, accelerator="cpu", enable_progress_bar=False),
    ...     pruning=functools.partial(PruningCallback, amount=0.3),
    ...     loss=KDLoss(temperature=4.0, alpha=0.9),
    ...     output_dir="runs/digits", target_macs_ratio=0.5, teacher_epochs=10, stage_epochs=3)
    >>> report = spiral.run()  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as L
import torch.nn as nn
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.utilities import rank_zero_info

from lightning_spiral.deploy.result import QuantizedResult
from lightning_spiral.deploy.settings import QuantizeSettings
from lightning_spiral.deploy.stage import QUANTIZED_DIR, run_quantize_stage
from lightning_spiral.distill import DistillationLoss
from lightning_spiral.errors import SpiralConfigError, StageFailedError
from lightning_spiral.io import load_model, load_teacher
from lightning_spiral.module import OptimizerFactory, SchedulerFactory, SpiralModule
from lightning_spiral.pruning import PruningCallback
from lightning_spiral.pruning.schedule import SCHEDULE_NAMES, stage_macs_ratios
from lightning_spiral.report import SpiralReport, StageResult, machine_info, print_report, read_report, write_report
from lightning_spiral.spiral.floor import judge_stage, settle_waypoints
from lightning_spiral.spiral.progress import (
    LoggerChoice,
    StageProgress,
    check_logger_choice,
    check_verbose,
    log_stage_result,
    stage_summary,
    stage_trainer,
)
from lightning_spiral.spiral.resume import check_same_settings, discard_unfinished_stages, is_finished
from lightning_spiral.spiral.stage_record import failed_stage, is_global_zero, measure_stage
from lightning_spiral.spiral.validation import (
    check_fraction,
    check_network_fits_data,
    check_positive_int,
    check_run_directory,
    check_stage_epochs,
    check_strategy_keeps_the_model,
    check_target_reachable,
    scheduled_probe,
)

TeacherMode = Literal["previous", "original"]
TEACHER_MODES: tuple[str, ...] = ("previous", "original")


def teacher_for_stage(mode: TeacherMode, *, original: nn.Module, previous: nn.Module) -> nn.Module:
    """The network a stage distills from: the stage-0 teacher, or the last kept student."""
    return original if mode == "original" else previous


class Spiral:
    """Run spiral compression: train or load a teacher, then prune + distill stage by stage.

    Args:
        model: the network to compress, built by :func:`lightning_spiral.models.build_model`
            and trained by stage 0; with a ``teacher_checkpoint`` of weights only, the architecture
            they are loaded into (in place); ``None`` when ``teacher_checkpoint`` carries its own.
        datamodule: a LightningDataModule with ``num_classes`` and ``input_shape`` attributes and a
            validation split carved from the training data.
        trainer: a partial of ``lightning.pytorch.Trainer``; every stage calls it with ``max_epochs``,
            ``callbacks`` and (unless bound) ``logger`` and ``default_root_dir``.
        pruning: a partial of :class:`PruningCallback` (``amount`` etc. bound); one per stage.
        loss: the distillation loss used in every pruning stage; ``None`` fine-tunes each stage on
            the labels alone (iterative pruning without distillation).
        optimizer: optimizer partial for :class:`SpiralModule` (``None``: SGD, lr 0.05).
        scheduler: scheduler partial for :class:`SpiralModule` (``None``: constant lr).
        teacher: ``"original"`` distills every stage from the stage-0 teacher; ``"previous"`` from
            the last kept student.
        target_macs_ratio: stop once the student's MACs are at most this fraction of the teacher's.
        schedule: ``"constant"`` prunes each stage as the ``pruning`` partial says (e.g. the same
            ``amount``); ``"geometric"``, ``"linear"`` or ``"cubic"`` (AGP) instead give stage k a MACs
            target from :func:`~lightning_spiral.pruning.schedule.stage_macs_ratios` so that stage
            ``max_stages`` lands on ``target_macs_ratio``; the ``pruning`` partial must then leave
            ``amount`` and its targets unset (refused otherwise: they would be ignored).
        max_stages: the most pruning stages to run.
        max_accuracy_drop: largest allowed fall of validation top-1 below the teacher's, as a
            fraction (0.02 = 2 points); a stage that falls further is rolled back and the spiral stops.
            With a MACs ``schedule`` the stages before the last are waypoints: promoted unjudged, and
            rolled back only if the last stage misses the floor (see :mod:`lightning_spiral.spiral.floor`).
        teacher_epochs: epochs to train the teacher in stage 0 (unused with ``teacher_checkpoint``).
        stage_epochs: epochs per pruning stage: one number, or one per stage.
        teacher_checkpoint: a trained teacher to use instead of training one: a model file written
            by :func:`lightning_spiral.save_model`, a Lightning checkpoint (``.ckpt``) of a
            SpiralModule or of your own LightningModule, or a plain state dict (``.pt``); see
            :func:`lightning_spiral.io.load_teacher`. The last two need ``model``.
        teacher_checkpoint_attr: the attribute of the checkpoint's LightningModule that holds the
            network (``"net"`` for ``self.net``; default ``"student"``, a SpiralModule's), or a key
            prefix to strip from a plain state dict.
        output_dir: the run directory; it must not already hold a spiral run unless ``overwrite`` or
            ``resume``.
        overwrite: allow writing into a directory that already holds a run.
        resume: continue the run in ``output_dir`` from its last finished stage (settings must match;
            a half-finished stage is discarded and redone, finished stages are never rewritten).
        seed: base seed; stage k runs with ``seed + k``.
        latency_repeats: timed runs per latency measurement (median reported, >= 20 recommended).
        threads: CPU threads used for latency measurement.
        cache_teacher: reuse the teacher's logits across epochs of a stage (deterministic data only,
            see :class:`SpiralModule`).
        loggers: Lightning loggers of every stage, metric keys prefixed ``stage_<k>``: ``"auto"``
            (CSV, plus TensorBoard when installed), ``"csv"``, ``"tensorboard"`` or ``"none"``; a
            ``logger`` bound in the ``trainer`` partial wins (see :mod:`lightning_spiral.spiral.progress`).
        verbose: 0 silent (no stage lines, table or progress bar), 1 a line per stage and the final
            table, 2 also the pruned layer widths and Lightning's model summary.
        quantize: the optional last stage (:class:`~lightning_spiral.deploy.QuantizeSettings`): INT8
            or fp16 for ONNX Runtime, written to ``quantized/``; ``None`` or kind ``"none"``: no such stage.
    """

    def __init__(
        self,
        model: nn.Module | None,
        datamodule: L.LightningDataModule,
        trainer: Callable[..., L.Trainer],
        pruning: Callable[[], PruningCallback],
        loss: DistillationLoss | None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        teacher: TeacherMode = "original",
        target_macs_ratio: float = 0.5,
        schedule: Literal["constant", "geometric", "linear", "cubic"] = "constant",
        max_stages: int = 3,
        max_accuracy_drop: float = 0.02,
        teacher_epochs: int = 10,
        stage_epochs: int | Sequence[int] = 3,
        teacher_checkpoint: str | None = None,
        teacher_checkpoint_attr: str | None = None,
        output_dir: str = "spiral_run",
        overwrite: bool = False,
        resume: bool = False,
        seed: int = 0,
        latency_repeats: int = 20,
        threads: int = 2,
        cache_teacher: bool = False,
        loggers: LoggerChoice = "auto",
        verbose: int = 1,
        quantize: QuantizeSettings | None = None,
    ) -> None:
        if teacher not in TEACHER_MODES:
            raise SpiralConfigError(f"`teacher` must be one of {list(TEACHER_MODES)}, got {teacher!r}.")
        for name in ("num_classes", "input_shape"):
            if not hasattr(datamodule, name):
                raise SpiralConfigError(
                    f"`datamodule` ({type(datamodule).__name__}) has no `{name}` attribute; the spiral needs "
                    "`num_classes` and `input_shape` to build and measure models."
                )
        self.resume = bool(resume)
        if not self.resume and model is None and teacher_checkpoint is None:
            raise SpiralConfigError(
                "Pass `model` (trained as the teacher in stage 0) or `teacher_checkpoint` (an already trained "
                f"teacher), got model={type(model).__name__} and teacher_checkpoint={teacher_checkpoint!r}."
            )
        check_strategy_keeps_the_model(trainer)
        self.loggers = check_logger_choice(loggers)
        self.verbose = check_verbose(verbose)
        self.model = model
        self.datamodule = datamodule
        self.trainer_factory = trainer
        self.pruning_factory = pruning
        self.loss = loss
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.teacher_mode = teacher
        self.target_macs_ratio = check_fraction("target_macs_ratio", target_macs_ratio, open_low=True)
        self.max_stages = check_positive_int("max_stages", max_stages)
        if schedule not in ("constant", *SCHEDULE_NAMES):
            raise SpiralConfigError(f"`schedule` must be one of {['constant', *SCHEDULE_NAMES]}, got {schedule!r}.")
        self.schedule = schedule
        self.stage_targets = (
            None if schedule == "constant" else stage_macs_ratios(min(self.target_macs_ratio, 0.999), self.max_stages, schedule)
        )
        # validates the pruning arguments now, before any training
        self.probe_callback = pruning() if self.stage_targets is None else scheduled_probe(pruning, schedule)
        self.max_accuracy_drop = check_fraction("max_accuracy_drop", max_accuracy_drop)
        self.teacher_epochs = check_positive_int("teacher_epochs", teacher_epochs)
        self.stage_epochs = check_stage_epochs(stage_epochs, self.max_stages)
        self.teacher_checkpoint = None if teacher_checkpoint is None else Path(teacher_checkpoint)
        if self.teacher_checkpoint is not None and not self.teacher_checkpoint.is_file():
            raise SpiralConfigError(f"`teacher_checkpoint` {str(self.teacher_checkpoint)!r} does not exist.")
        self.output_dir = check_run_directory(Path(output_dir), overwrite=overwrite, resume=self.resume)
        self.seed = int(seed)
        self.latency_repeats = check_positive_int("latency_repeats", latency_repeats)
        self.threads = check_positive_int("threads", threads)
        self.cache_teacher = bool(cache_teacher)
        if quantize is not None and not isinstance(quantize, QuantizeSettings):
            raise SpiralConfigError(
                f"`quantize` must be a QuantizeSettings or None, got {type(quantize).__name__} ({quantize!r}); "
                "use the `quantize=none|int8_ptq|int8_qat|fp16` config group."
            )
        self.quantize = quantize or QuantizeSettings()
        self.loaded_teacher = (  # a resumed run takes its teacher from its own stage_0
            None
            if self.teacher_checkpoint is None or self.resume
            else load_teacher(self.teacher_checkpoint, model, teacher_checkpoint_attr)
        )
        if not self.resume:
            network = self.loaded_teacher if self.loaded_teacher is not None else self.model
            check_network_fits_data(network, self.datamodule)
            check_target_reachable(self.probe_callback, network, tuple(self.datamodule.input_shape), schedule=self.schedule,
                                   max_stages=self.max_stages, target_macs_ratio=self.target_macs_ratio)

    # ---------------------------------------------------------------------------------- the loop
    def run(self) -> SpiralReport:
        """Run every stage; return the report (also written to ``output_dir``)."""
        with warnings.catch_warnings():
            # the frozen teacher is in eval mode on purpose; Lightning warns about it at every fit
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode", category=PossibleUserWarning)
            return self.run_stages()

    def run_stages(self) -> SpiralReport:
        """The stage loop of :meth:`run`."""
        if self.resume:
            report, original_teacher, current = self.resume_point()
        else:
            teacher, teacher_result = self.run_teacher_stage()
            report = SpiralReport(teacher=teacher_result, stages=[], settings=self.settings(), machine=machine_info(self.threads))
            self.write(report)
            original_teacher, current = teacher, teacher
        teacher_result = report.teacher
        if self.stage_targets is not None and self.verbose:
            targets = ", ".join(f"{ratio:.0%}" for ratio in self.stage_targets)
            rank_zero_info(f"schedule {self.schedule}: stage MACs targets {targets} of the teacher's; "
                           f"stages before {self.max_stages} are waypoints, the floor judges the last")
        for stage in range(len(report.stages) + 1, self.max_stages + 1):
            if is_finished(report, self.target_macs_ratio, self.max_stages):
                break
            stage_teacher = teacher_for_stage(self.teacher_mode, original=original_teacher, previous=current)
            previous_macs = report.stages[-1].macs if report.stages else teacher_result.macs
            student, result = self.run_pruning_stage(stage, stage_teacher, current, teacher_result, previous_macs)
            report.stages.append(result)
            self.write(report)
            if result.kept:
                current = student
        if self.stage_targets is not None and settle_waypoints(report, self.max_accuracy_drop):
            self.write(report)
            current = load_model(self.output_dir / report.final.model_path)
        if self.quantize.kind != "none" and report.quantized is None:
            report.quantized = self.run_quantize_stage(original_teacher, current)
            self.write(report)
        if self.is_global_zero and self.verbose:
            print_report(report)
        return report

    def run_quantize_stage(self, original_teacher: nn.Module, final: nn.Module) -> QuantizedResult | None:
        """The last stage: quantize the final kept model (see :mod:`lightning_spiral.deploy.stage`)."""
        L.seed_everything(self.seed + self.max_stages + 1, workers=True, verbose=False)
        return run_quantize_stage(
            self.quantize, final, teacher_for_stage(self.teacher_mode, original=original_teacher, previous=final),
            datamodule=self.datamodule, output_dir=self.output_dir, loss=self.loss,
            make_trainer=lambda epochs: self.make_trainer(QUANTIZED_DIR, epochs=epochs, callbacks=[]),
            is_global_zero=self.is_global_zero, threads=self.threads, latency_repeats=self.latency_repeats,
        )

    def resume_point(self) -> tuple[SpiralReport, nn.Module, nn.Module]:
        """The recorded report, the teacher and the last kept student of the run being resumed."""
        report = read_report(self.output_dir)
        check_same_settings(report.settings, self.settings())
        if self.is_global_zero:
            for path in discard_unfinished_stages(self.output_dir, len(report.stages)):
                rank_zero_info(f"[Spiral] discarded the unfinished {path.name}")
        teacher = load_model(self.output_dir / report.teacher.model_path)
        current = load_model(self.output_dir / report.final.model_path)
        rank_zero_info(f"[Spiral] resuming {self.output_dir} after stage {len(report.stages)} (last kept: stage {report.final.stage})")
        return report, teacher, current

    def run_teacher_stage(self) -> tuple[nn.Module, StageResult]:
        """Stage 0: train the teacher on labels (or load it), then measure and save it."""
        L.seed_everything(self.seed, workers=True, verbose=False)
        start = time.perf_counter()
        if self.teacher_checkpoint is not None:
            teacher = self.loaded_teacher
            trainer = self.make_trainer(0, epochs=1, callbacks=[])
            module = self.make_module(teacher, teacher=None)
        else:
            teacher = self.model
            trainer = self.make_trainer(0, epochs=self.teacher_epochs, callbacks=[])
            module = self.make_module(teacher, teacher=None)
            trainer.fit(module, datamodule=self.datamodule)
        wall_s = time.perf_counter() - start
        result = self.measure(0, trainer, module, amount=0.0, wall_s=wall_s, note="teacher")
        log_stage_result(trainer, result, teacher=result)
        return teacher, result

    def run_pruning_stage(
        self, stage: int, teacher: nn.Module, previous: nn.Module, teacher_result: StageResult, previous_macs: int
    ) -> tuple[nn.Module, StageResult]:
        """Stage k: prune a copy of ``previous`` in ``setup``, distill it from ``teacher``, judge it."""
        L.seed_everything(self.seed + stage, workers=True, verbose=False)
        student = copy.deepcopy(previous).train()
        callback = self.stage_callback(stage, teacher_result.macs, previous_macs)
        callbacks: list[L.Callback] = [callback]
        if self.verbose:
            action = "fine-tuning" if self.loss is None else "distilling"
            callbacks.append(StageProgress(stage, self.max_stages, teacher_result.macs, tuple(self.datamodule.input_shape), action))
        trainer = self.make_trainer(stage, epochs=self.stage_epochs[stage - 1], callbacks=callbacks)
        module = self.make_module(student, teacher=teacher)
        start = time.perf_counter()
        try:
            trainer.fit(module, datamodule=self.datamodule)
        except StageFailedError as err:  # e.g. a non-finite loss: roll back, keep every earlier stage
            return previous, failed_stage(stage, module.student, tuple(self.datamodule.input_shape), amount=callback.applied_amount,
                                          wall_s=time.perf_counter() - start, error=err, repeats=self.latency_repeats,
                                          threads=self.threads)
        wall_s = time.perf_counter() - start
        result = self.measure(stage, trainer, module, amount=callback.applied_amount, wall_s=wall_s)
        judge_stage(result, teacher_result, self.max_accuracy_drop,
                    waypoint=self.stage_targets is not None and stage < self.max_stages)
        log_stage_result(trainer, result, teacher_result)
        if self.verbose:
            rank_zero_info(stage_summary(result, teacher_result, self.max_stages))
        return student, result

    # ------------------------------------------------------------------------------- the parts
    def stage_callback(self, stage: int, teacher_macs: int, previous_macs: int) -> PruningCallback:
        """The stage's PruningCallback: as configured, or aimed at the schedule's MACs ratio."""
        overrides: dict[str, Any] = {} if self.verbose == 1 else {"verbose": self.verbose}  # 1: as configured
        if self.stage_targets is None:
            return self.pruning_factory(**overrides)
        relative = self.stage_targets[stage - 1] * teacher_macs / previous_macs
        return self.pruning_factory(amount=None, target_macs_ratio=min(relative, 0.999), **overrides)

    def make_trainer(self, stage: int | str, epochs: int, callbacks: list[L.Callback]) -> L.Trainer:
        """A fresh Trainer for ``stage`` (a number, or a folder name), see :func:`~lightning_spiral.spiral.progress.stage_trainer`."""
        return stage_trainer(self.trainer_factory, self.output_dir, stage if isinstance(stage, str) else f"stage_{stage}",
                             epochs=epochs, callbacks=callbacks, loggers=self.loggers, verbose=self.verbose)

    def measure(self, stage: int, trainer: L.Trainer, module: SpiralModule, *, amount: float, wall_s: float, note: str = "") -> StageResult:
        """Measure and save a finished stage (:func:`~lightning_spiral.spiral.stage_record.measure_stage`)."""
        return measure_stage(stage, trainer, module, self.datamodule, self.output_dir, amount=amount, wall_s=wall_s,
                             note=note, repeats=self.latency_repeats, threads=self.threads)

    def make_module(self, student: nn.Module, teacher: nn.Module | None) -> SpiralModule:
        return SpiralModule(
            student,
            teacher=teacher if self.loss is not None else None,
            loss=self.loss if teacher is not None else None,
            num_classes=self.datamodule.num_classes,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            cache_teacher=self.cache_teacher and teacher is not None and self.loss is not None,
        )

    @property
    def is_global_zero(self) -> bool:
        return is_global_zero()

    def write(self, report: SpiralReport) -> None:
        if self.is_global_zero:
            write_report(report, self.output_dir)

    def settings(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher_mode,
            "target_macs_ratio": self.target_macs_ratio,
            "schedule": self.schedule,
            "max_stages": self.max_stages,
            "max_accuracy_drop": self.max_accuracy_drop,
            "teacher_epochs": None if self.teacher_checkpoint else self.teacher_epochs,
            "stage_epochs": list(self.stage_epochs),
            "amount": None if self.stage_targets else self.probe_callback.amount,  # a schedule sets stage targets instead
            "stage_macs_ratio": None if self.stage_targets else self.probe_callback.target_macs_ratio,
            "importance": self.probe_callback.importance,
            "loss": repr(self.loss),
            "seed": self.seed,
            "teacher_checkpoint": None if self.teacher_checkpoint is None else str(self.teacher_checkpoint),
            "quantize": self.quantize.to_dict(),
        }
