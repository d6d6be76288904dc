"""The spiral driver: rounds of prune -> distill -> measure -> promote, each a fresh Lightning fit.

The driver works on any LightningModule: the user's own (``module=``, with the attribute that holds
the network to compress, ``network=``, and the validation ``monitor`` that judges a stage), or the
built-in :class:`~lightning_spiral.SpiralModule`, which ``model=`` wraps around a classification
network (judged on ``val/top1``). Both go through the same stage loop:

- stage 0 trains the teacher: a copy of the module, fit as the user wrote it (or loaded, or used as
  given with ``teacher_epochs=0``); it is measured and saved;
- stage k fits a fresh copy of the module carrying a copy of the last kept network, in a fresh
  ``Trainer`` (user callbacks copied), with a :class:`PruningCallback` that prunes the network in
  ``setup`` and a :class:`DistillationCallback` that adds the teacher's term to the loss the
  module's ``training_step`` returns; the module's optimizer, metrics and logging stay its own;
- after fit the stage is validated (the monitor decides), tested when the datamodule has a test
  split (reported only), measured and saved (weights + pruning history, restorable onto a fresh
  instance of the user's class), then judged (:mod:`lightning_spiral.spiral.floor`): kept and
  promoted, rolled back, or the target is reached;
- after the last stage, the optional quantize stage writes the final model's INT8 / fp16 ONNX
  artifact; then the teacher, every kept stage and that artifact are timed side by side
  (:mod:`lightning_spiral.spiral.final_timing`) for the report's latencies and speed-ups. Each step
  is recorded in ``report.json`` once done, so a resumed run redoes only what is missing.

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
    ...     output_dir="runs/digits", schedule="constant", target_macs_ratio=0.5, teacher_epochs=10, stage_epochs=3)
    >>> report = spiral.run()  # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch.nn as nn
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.utilities import rank_zero_info

from lightning_spiral.deploy.stage import QUANTIZED_DIR, run_quantize_stage
from lightning_spiral.errors import StageFailedError
from lightning_spiral.pruning import PruningCallback
from lightning_spiral.records import QuantizedResult, SpiralReport, StageResult, machine_info
from lightning_spiral.report import print_report, write_report
from lightning_spiral.spiral.final_timing import cuda_precisions, cuda_timing, time_side_by_side, timing_is_due, trains_on_cuda
from lightning_spiral.spiral.floor import judge_stage, settle_waypoints
from lightning_spiral.spiral.progress import StageProgress, log_stage_result, stage_summary, stage_trainer
from lightning_spiral.spiral.resume import clear_run, discard_unfinished_stages, is_finished
from lightning_spiral.spiral.setup import TEACHER_MODES, SpiralSetup, TeacherMode
from lightning_spiral.spiral.stage_record import failed_stage, is_global_zero, measure_stage
from lightning_spiral.spiral.template import ModuleTemplate, detached_copy
from lightning_spiral.spiral.waypoint_lr import LearningRateScale


def teacher_for_stage(mode: TeacherMode, *, original: nn.Module, previous: nn.Module) -> nn.Module:
    """The network a stage distills from: the stage-0 teacher, or the last kept student."""
    return original if mode == "original" else previous


def artifacts_line(output_dir: Path, report: SpiralReport) -> str:
    """Where the run's files are, as full paths (the serving commands work from any directory)."""
    root = output_dir.resolve()
    line = f"[Spiral] report: {root / 'report.md'} · final model: {root / report.final.model_path}"
    if report.quantized is not None:
        line += f" · {report.quantized.kind}: {root / report.quantized.model_path}"
    return line


class Spiral(SpiralSetup):
    """Run spiral compression: train or load a teacher, then prune + distill stage by stage.

    Args:
        model: the built-in path: a classification network (e.g. from
            :func:`lightning_spiral.models.build_model`) wrapped in :class:`SpiralModule` and judged
            on ``val/top1``; with a ``teacher_checkpoint`` of weights only, the architecture they
            are loaded into; ``None`` with ``module``, or when ``teacher_checkpoint`` carries its own.
        datamodule: a LightningDataModule whose validation split is carved from the training data
            (the built-in path also needs its ``num_classes`` and ``input_shape``).
        trainer: a partial of ``lightning.pytorch.Trainer``; every stage calls it with ``max_epochs``,
            ``callbacks`` (after copies of those bound in it) and, unless bound, ``logger`` and
            ``default_root_dir``.
        pruning: a partial of :class:`PruningCallback` (``amount`` etc. bound); one per stage.
        loss: the distillation loss of every pruning stage; ``None`` fine-tunes each stage with the
            module's own loss alone (iterative pruning without distillation).
        module: your own LightningModule; each stage fits a copy of it (the module itself is never
            trained). Its ``training_step``, ``configure_optimizers``, metrics and logging are used as written.
        network: the attribute of ``module`` holding the network to compress (``"net"``,
            ``"backbone"``); ``None``: the module itself.
        monitor: the validation metric that judges a stage: a :class:`Monitor` (key, ``min``/``max``,
            allowed drop, absolute or relative), or a key judged with ``mode="max"`` and
            ``max_accuracy_drop``; ``None``: ``val/top1``, which :class:`SpiralModule` logs.
        example_input: a batch the network takes, for tracing, MACs and latency; ``None``: the
            module's ``example_input_array``, else the first training batch (the built-in path:
            ``datamodule.input_shape``).
        distill_weight: with ``module``: the distillation term is ``distill_weight × loss`` added to
            the loss your step returns. The built-in path replaces the step's loss by ``distill_weight × loss``.
        outputs: how to find the network's output tensor in what it returns (see
            :class:`DistillationCallback`): ``None``, a key/attribute name, an index or a function.
        optimizer: optimizer partial of the built-in :class:`SpiralModule` (``None``: SGD, lr 0.05).
        scheduler: scheduler partial of the built-in module (``None``: constant lr).
        teacher: ``"original"`` distills every stage from the stage-0 teacher; ``"previous"`` from
            the last kept student.
        target_macs_ratio: stop once the network's MACs are at most this fraction of the teacher's.
        schedule: ``"constant"`` prunes each stage as the ``pruning`` partial says; ``"geometric"``,
            ``"linear"`` or ``"cubic"`` (AGP) give stage k a MACs target landing on
            ``target_macs_ratio`` after ``max_stages`` (the partial must leave ``amount`` unset).
        max_stages: the most pruning stages to run.
        max_accuracy_drop: the allowed fall of a key ``monitor`` below the teacher (default 0.02);
            with a MACs ``schedule`` only the last stage is judged (:mod:`lightning_spiral.spiral.floor`).
        teacher_epochs: epochs to train the teacher in stage 0; ``0``: the network is already
            trained (it is measured and saved as the teacher). Unused with ``teacher_checkpoint``.
        stage_epochs: epochs per pruning stage: one number, or one per stage; ``None``: one per
            waypoint stage and nine for the last with a MACs schedule, three per stage with ``"constant"``.
        teacher_checkpoint: a trained teacher to use instead of training one (see
            :func:`lightning_spiral.io.load_teacher`); weights-only files need ``model``.
        teacher_checkpoint_attr: the checkpoint module's attribute that holds the network.
        output_dir: the run directory; it must not already hold a run unless ``overwrite`` or ``resume``.
        overwrite: replace the run in ``output_dir``: once the new run is accepted (every check passed),
            :meth:`run` removes the old run's stage folders and reports before its teacher stage.
        resume: continue the run in ``output_dir`` from its last finished stage (settings must match;
            with ``module``, pass the same module: the saved networks are restored onto its class).
        seed: base seed; stage k runs with ``seed + k``.
        latency_repeats: timed runs per latency measurement.
        timing_rounds: alternating rounds of the side-by-side timing after the last stage (and the
            quantize stage, whose artifact is timed in the same rounds), which gives the report's
            latencies and speed-ups (the per-stage figures are provisional).
        threads: CPU threads used for latency measurement.
        cache_teacher: reuse the teacher's outputs across epochs of a stage (deterministic data only).
        mixing: function matching in the pruning stages: ``"mixup"`` or ``"cutmix"`` mixes each
            training batch, and student and teacher see the same mixed images
            (:mod:`~lightning_spiral.distill.mixing`); built-in module and image data only. The
            teacher stage trains on the batches as they are.
        mixing_alpha: Beta(alpha, alpha) concentration of the mixing weight.
        waypoint_lr_scale: with a MACs schedule: the waypoint stages (all but the last) train at
            this fraction of the optimizer's learning rate (:mod:`~lightning_spiral.spiral.waypoint_lr`);
            the last stage at the full rate, its schedule restarted.
        loggers: Lightning loggers of every stage: ``"auto"``, ``"csv"``, ``"tensorboard"``, ``"none"``.
        verbose: 0 silent, 1 a line per stage and the final table, 2 also layer widths and summaries.
        quantize: the optional last stage (:class:`~lightning_spiral.deploy.QuantizeSettings`),
            built-in classification path only.

    The defaults are those of the ``lightning-spiral`` command (one record:
    :data:`lightning_spiral.spiral.settings.DEFAULTS`). Every argument is checked when the spiral is
    built, before any work; what shapes the run is recorded in ``report.json``
    (:class:`~lightning_spiral.spiral.settings.RunSettings`) and compared whole on ``resume``.

    Example (your own module, judged on its own ``val_loss``)::

        spiral = Spiral(module=LitAutoEncoder(), network="autoencoder", datamodule=data,
                        monitor=Monitor("val_loss", mode="min", max_drop=0.5, relative=True),
                        loss=LogitMSELoss(), trainer=..., pruning=..., output_dir="runs/ae")
    """

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
            if self.overwrite and self.is_global_zero:
                clear_run(self.output_dir)
            teacher, teacher_result = self.run_teacher_stage()
            report = SpiralReport(teacher=teacher_result, stages=[], settings=self.settings.to_dict(),
                                  machine=machine_info(self.threads))
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
        if self.stage_targets is not None and settle_waypoints(report, self.monitor):
            self.write(report)
            current = self.load_network(self.output_dir / report.final.model_path)
        if self.quantize.kind != "none" and report.quantized is None:  # before the timing: the artifact is timed too
            report.quantized = self.run_quantize_stage(original_teacher, current)
            self.write(report)
        if timing_is_due(report) and self.is_global_zero:
            report.timing = self.final_timing(report)
            self.write(report)
        if self.is_global_zero and self.verbose:
            print_report(report)
            rank_zero_info(artifacts_line(self.output_dir, report))
        return report

    def final_timing(self, report: SpiralReport) -> dict[str, Any]:
        """The teacher, every kept stage and the quantized artifact timed side by side (see :mod:`.final_timing`)."""
        networks = {result.stage: self.load_network(self.output_dir / result.model_path)
                    for result in (report.teacher, *report.stages) if result.kept}
        quantized = None if report.quantized is None else self.output_dir / report.quantized.model_path
        if self.verbose:
            artifact = "" if report.quantized is None else f" and the {report.quantized.kind} model"
            rank_zero_info(f"[Spiral] timing the teacher, {len(networks) - 1} kept stage(s){artifact} side by side, "
                           f"{self.timing_rounds} alternating rounds")
        timing = time_side_by_side(networks, self.example, rounds=self.timing_rounds, repeats=self.latency_repeats,
                                   threads=self.threads, quantized=quantized)
        if trains_on_cuda(self.trainer_factory):  # the device that serves, too: fp32 and the Trainer's precision
            timing["cuda"] = cuda_timing(networks, self.example, precisions=cuda_precisions(self.trainer_factory),
                                         rounds=self.timing_rounds, repeats=self.latency_repeats, threads=self.threads)
        return timing

    def run_quantize_stage(self, original_teacher: nn.Module, final: nn.Module) -> QuantizedResult | None:
        """The last stage: quantize the final kept model (see :mod:`lightning_spiral.deploy.stage`)."""
        L.seed_everything(self.seed + self.max_stages + 1, workers=True, verbose=False)
        return run_quantize_stage(
            self.quantize, final, teacher_for_stage(self.teacher_mode, original=original_teacher, previous=final),
            datamodule=self.datamodule, output_dir=self.output_dir, loss=self.loss,
            make_trainer=lambda epochs: self.make_trainer(QUANTIZED_DIR, epochs=epochs, callbacks=[]),
            is_global_zero=self.is_global_zero, threads=self.threads,
        )

    def resume_point(self) -> tuple[SpiralReport, nn.Module, nn.Module]:
        """The recorded report, the teacher and the last kept network of the run being resumed."""
        report = self.recorded  # read and compared with the settings when the spiral was built
        if self.is_global_zero:
            for path in discard_unfinished_stages(self.output_dir, len(report.stages)):
                rank_zero_info(f"[Spiral] discarded the unfinished {path.name}")
        teacher = self.load_network(self.output_dir / report.teacher.model_path)
        current = self.load_network(self.output_dir / report.final.model_path)
        if self.template is None:  # the built-in path without a model: the teacher file has the architecture
            self.template = ModuleTemplate(self.builtin_module(teacher), "student")
        rank_zero_info(f"[Spiral] resuming {self.output_dir} after stage {len(report.stages)} (last kept: stage {report.final.stage})")
        return report, teacher, current

    def run_teacher_stage(self) -> tuple[nn.Module, StageResult]:
        """Stage 0: train the teacher with the module's own loss (or load it), then measure and save it."""
        L.seed_everything(self.seed, workers=True, verbose=False)
        start = time.perf_counter()
        trained = self.teacher_checkpoint is not None or self.teacher_epochs == 0
        module = self.template.stage_module(detached_copy(self.template.network))
        trainer = self.make_trainer(0, epochs=max(self.teacher_epochs, 1), callbacks=[])
        if not trained:
            trainer.fit(module, datamodule=self.datamodule)
        wall_s = time.perf_counter() - start
        result = self.measure(0, trainer, module, amount=0.0, wall_s=wall_s, note="teacher")
        log_stage_result(trainer, result, teacher=result)
        return self.template.network_of(module), result

    def run_pruning_stage(
        self, stage: int, teacher: nn.Module, previous: nn.Module, teacher_result: StageResult, previous_macs: int
    ) -> tuple[nn.Module, StageResult]:
        """Stage k: prune a copy of ``previous`` in ``setup``, distill it from ``teacher``, judge it."""
        L.seed_everything(self.seed + stage, workers=True, verbose=False)
        module = self.template.stage_module(detached_copy(previous).train())
        callback = self.stage_callback(stage, teacher_result.macs, previous_macs)
        callbacks: list[L.Callback] = [callback, *self.distillation_callbacks(teacher)]
        if self.is_waypoint(stage) and self.waypoint_lr_scale != 1.0:
            callbacks.append(LearningRateScale(self.waypoint_lr_scale))
        if self.verbose:
            action = "fine-tuning" if self.loss is None else "distilling"
            callbacks.append(StageProgress(stage, self.max_stages, teacher_result.macs, self.example, action, self.template.attr))
        trainer = self.make_trainer(stage, epochs=self.stage_epochs[stage - 1], callbacks=callbacks)
        start = time.perf_counter()
        try:
            trainer.fit(module, datamodule=self.datamodule)
        except StageFailedError as err:  # e.g. a non-finite loss: roll back, keep every earlier stage
            return previous, failed_stage(stage, self.template.network_of(module), self.example, amount=callback.applied_amount,
                                          wall_s=time.perf_counter() - start, error=err, repeats=self.latency_repeats,
                                          threads=self.threads)
        wall_s = time.perf_counter() - start
        result = self.measure(stage, trainer, module, amount=callback.applied_amount, wall_s=wall_s)
        judge_stage(result, teacher_result, self.monitor, waypoint=self.is_waypoint(stage))
        log_stage_result(trainer, result, teacher_result)
        if self.verbose:
            rank_zero_info(stage_summary(result, teacher_result, self.max_stages, self.monitor))
        return self.template.network_of(module), result

    # ------------------------------------------------------------------------------- the parts
    def is_waypoint(self, stage: int) -> bool:
        """Whether ``stage`` is one of a MACs schedule's stages before the last."""
        return self.stage_targets is not None and stage < self.max_stages

    def stage_callback(self, stage: int, teacher_macs: int, previous_macs: int) -> PruningCallback:
        """The stage's PruningCallback: as configured, or aimed at the schedule's MACs ratio."""
        overrides: dict[str, Any] = self.pruning_overrides()
        if self.stage_targets is None:
            return self.pruning_factory(**overrides)
        relative = self.stage_targets[stage - 1] * teacher_macs / previous_macs
        return self.pruning_factory(amount=None, target_macs_ratio=min(relative, 0.999), **overrides)

    def make_trainer(self, stage: int | str, epochs: int, callbacks: list[L.Callback]) -> L.Trainer:
        """A fresh Trainer for ``stage`` (a number, or a folder name), see :func:`~lightning_spiral.spiral.progress.stage_trainer`."""
        return stage_trainer(self.trainer_factory, self.output_dir, stage if isinstance(stage, str) else f"stage_{stage}",
                             epochs=epochs, callbacks=callbacks, loggers=self.loggers, verbose=self.verbose)

    def measure(self, stage: int, trainer: L.Trainer, module: L.LightningModule, *, amount: float, wall_s: float,
                note: str = "") -> StageResult:
        """Measure and save a finished stage (:func:`~lightning_spiral.spiral.stage_record.measure_stage`)."""
        return measure_stage(stage, trainer, module, self.template.network_of(module), self.datamodule, self.output_dir,
                             example=self.example, monitor=self.monitor, amount=amount, wall_s=wall_s, note=note,
                             repeats=self.latency_repeats, threads=self.threads)

    @property
    def is_global_zero(self) -> bool:
        return is_global_zero()

    def write(self, report: SpiralReport) -> None:
        if self.is_global_zero:
            write_report(report, self.output_dir)


__all__ = ["TEACHER_MODES", "Spiral", "TeacherMode", "teacher_for_stage"]
