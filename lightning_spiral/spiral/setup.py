"""A spiral's arguments, checked before any work: :class:`SpiralSetup`, the base of :class:`Spiral`.

Everything that can be known wrong is refused here, in one line naming the argument: values and
choices, the run directory, the module's network attribute, the example input (it must run
through the network), the network's output against the data (built-in path), a save -> restore
round trip of a pruned copy of the network, the target's reachability, and — after one sanity
validation batch — that the module logs the monitored key. Only then does training start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as L
import torch
import torch.nn as nn

from lightning_spiral.checks import check_bool, check_choice, check_int, check_interval, check_positive
from lightning_spiral.deploy.settings import QuantizeSettings
from lightning_spiral.distill import DistillationCallback
from lightning_spiral.distill.mixing import check_mixable, check_mixing
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.io import load_model, load_teacher, restore
from lightning_spiral.module import OptimizerFactory, SchedulerFactory, SpiralModule
from lightning_spiral.pruning import PruningCallback
from lightning_spiral.pruning.schedule import SCHEDULE_NAMES, stage_macs_ratios
from lightning_spiral.spiral.monitor import BUILTIN_KEY, Monitor, as_monitor
from lightning_spiral.spiral.progress import LoggerChoice, check_logger_choice, check_verbose
from lightning_spiral.spiral.template import ModuleTemplate, detached_copy
from lightning_spiral.spiral.resume import recorded_report
from lightning_spiral.spiral.settings import DEFAULTS, RunSettings, default_stage_epochs
from lightning_spiral.spiral.validation import (
    check_module_optimizers,
    check_monitor_is_logged,
    check_network_fits_data,
    check_round_trip,
    check_run_directory,
    check_stage_epochs,
    check_strategy_keeps_the_model,
    check_target_reachable,
    check_trainer_builds,
    data_example,
    scheduled_probe,
)

TeacherMode = Literal["previous", "original"]
TEACHER_MODES: tuple[str, ...] = ("previous", "original")


class SpiralSetup:
    """The validated arguments of a :class:`~lightning_spiral.Spiral` (documented there)."""

    def __init__(
        self,
        model: nn.Module | None = None,
        datamodule: L.LightningDataModule | None = None,
        trainer: Callable[..., L.Trainer] | None = None,
        pruning: Callable[..., PruningCallback] | None = None,
        loss: nn.Module | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        teacher: TeacherMode = DEFAULTS.teacher,
        target_macs_ratio: float = DEFAULTS.target_macs_ratio,
        schedule: Literal["constant", "geometric", "linear", "cubic"] = DEFAULTS.schedule,
        max_stages: int = DEFAULTS.max_stages,
        max_accuracy_drop: float | None = DEFAULTS.max_accuracy_drop,
        teacher_epochs: int = DEFAULTS.teacher_epochs,
        stage_epochs: int | Sequence[int] | None = DEFAULTS.stage_epochs,
        teacher_checkpoint: str | None = None,
        teacher_checkpoint_attr: str | None = None,
        output_dir: str = "spiral_run",
        overwrite: bool = False,
        resume: bool = False,
        seed: int = 0,
        latency_repeats: int = DEFAULTS.latency_repeats,
        timing_rounds: int = DEFAULTS.timing_rounds,
        threads: int = DEFAULTS.threads,
        cache_teacher: bool = DEFAULTS.cache_teacher,
        mixing: str | None = DEFAULTS.mixing,
        mixing_alpha: float = DEFAULTS.mixing_alpha,
        waypoint_lr_scale: float = DEFAULTS.waypoint_lr_scale,
        loggers: LoggerChoice = DEFAULTS.loggers,
        verbose: int = DEFAULTS.verbose,
        quantize: QuantizeSettings | None = None,
        module: L.LightningModule | None = None,
        network: str | None = None,
        monitor: Monitor | str | None = None,
        example_input: torch.Tensor | None = None,
        distill_weight: float = DEFAULTS.distill_weight,
        outputs: Any = None,
    ) -> None:
        for name, value in (("datamodule", datamodule), ("trainer", trainer), ("pruning", pruning)):
            if value is None:
                raise SpiralConfigError(f"`{name}` is required, got None.")
        self.teacher_mode = check_choice("teacher", teacher, TEACHER_MODES)
        self.resume = check_bool("resume", resume)
        self.seed = check_int("seed", seed, 0)
        self.builtin = module is None
        self.datamodule = datamodule
        self.check_path(model, module, network, optimizer, scheduler, teacher_checkpoint, quantize)
        check_strategy_keeps_the_model(trainer)
        check_trainer_builds(trainer)
        self.loggers = check_logger_choice(loggers)
        self.verbose = check_verbose(verbose)
        self.trainer_factory = trainer
        self.pruning_factory = pruning
        self.loss = loss
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.outputs = outputs
        self.distill_weight = check_positive("distill_weight", distill_weight)
        self.distill_mode = "replace" if self.builtin else "add"  # the built-in loss carries its own label term
        check_interval("max_accuracy_drop", max_accuracy_drop, "[0, 1]", none_ok=True)
        self.monitor = as_monitor(monitor, max_accuracy_drop)
        self.target_macs_ratio = check_interval("target_macs_ratio", target_macs_ratio, "(0, 1]")
        self.max_stages = check_int("max_stages", max_stages, 1)
        self.schedule = check_choice("schedule", schedule, ("constant", *SCHEDULE_NAMES))
        self.stage_targets = (
            None if schedule == "constant" else stage_macs_ratios(min(self.target_macs_ratio, 0.999), self.max_stages, schedule)
        )
        # validates the pruning arguments now, before any training
        self.probe_callback = pruning() if self.stage_targets is None else scheduled_probe(pruning, schedule)
        self.teacher_epochs = check_int("teacher_epochs", teacher_epochs, 0)
        self.stage_epochs = check_stage_epochs(default_stage_epochs(stage_epochs, self.max_stages, schedule), self.max_stages)
        self.teacher_checkpoint = None if teacher_checkpoint is None else Path(teacher_checkpoint)
        if self.teacher_checkpoint is not None and not self.teacher_checkpoint.is_file():
            raise SpiralConfigError(f"`teacher_checkpoint` {str(self.teacher_checkpoint)!r} does not exist.")
        self.overwrite = check_bool("overwrite", overwrite)
        self.output_dir = check_run_directory(Path(output_dir), overwrite=self.overwrite, resume=self.resume)
        self.latency_repeats = check_int("latency_repeats", latency_repeats, 1)
        self.timing_rounds = check_int("timing_rounds", timing_rounds, 1)
        self.threads = check_int("threads", threads, 1)
        self.cache_teacher = check_bool("cache_teacher", cache_teacher)
        self.mixing, self.mixing_alpha = check_mixing(mixing, mixing_alpha, mode=self.distill_mode,
                                                      cache_teacher=self.cache_teacher)
        self.waypoint_lr_scale = self.check_waypoint_lr_scale(waypoint_lr_scale)
        self.quantize = quantize or QuantizeSettings()
        self.network_attr = "student" if self.builtin else network
        self.template, self.blank = self.build_template(model, module, network, teacher_checkpoint_attr)
        if self.builtin and self.template is not None:
            check_network_fits_data(self.template.network, self.datamodule)
        self.example = self.example_input(example_input)
        if self.mixing is not None:
            self.check_mixing_applies()
        self.settings = RunSettings.of(self, model=model, module=module)
        if self.resume:
            self.recorded = recorded_report(self.output_dir)
            if self.builtin and model is None:  # the architecture comes from the run's own model files
                self.settings = self.settings.with_section("model", self.recorded.settings.get("model"))
            self.settings.check_resumable(self.recorded.settings)
        else:
            self.check_before_training()

    # ------------------------------------------------------------------------------ the two paths
    def check_path(self, model: nn.Module | None, module: L.LightningModule | None, network: str | None,
                   optimizer: Any, scheduler: Any, teacher_checkpoint: str | None, quantize: Any) -> None:
        """The built-in path (``model``) and a user's module (``module``) exclude each other's arguments."""
        if module is not None:
            given = {name: value for name, value in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler))
                     if value is not None}
            if given:
                raise SpiralConfigError(
                    f"`module` ({type(module).__name__}) brings its own network and `configure_optimizers`; "
                    f"{', '.join(f'`{name}`' for name in given)} would be ignored: leave them None."
                )
            if quantize is not None and getattr(quantize, "kind", "none") != "none":
                raise SpiralConfigError("`quantize` needs the built-in classification path (`model=`); with `module` set it to None.")
            return
        if network is not None:
            raise SpiralConfigError(f"`network`={network!r} names an attribute of `module`, but no `module` was given.")
        for name in ("num_classes", "input_shape"):
            if not hasattr(self.datamodule, name):
                raise SpiralConfigError(
                    f"`datamodule` ({type(self.datamodule).__name__}) has no `{name}` attribute; the built-in "
                    "classification path (`model=`) needs `num_classes` and `input_shape`. For other data, pass your "
                    "own LightningModule as `module`."
                )
        if not self.resume and model is None and teacher_checkpoint is None:
            raise SpiralConfigError(
                "Pass `model` (trained as the teacher in stage 0), `teacher_checkpoint` (an already trained teacher) "
                f"or your own LightningModule as `module`, got model={type(model).__name__} and "
                f"teacher_checkpoint={teacher_checkpoint!r}."
            )
        if quantize is not None and not isinstance(quantize, QuantizeSettings):
            raise SpiralConfigError(
                f"`quantize` must be a QuantizeSettings or None, got {type(quantize).__name__} ({quantize!r}); "
                "use the `quantize=none|int8_ptq|int8_qat|fp16` config group."
            )

    def build_template(self, model: nn.Module | None, module: L.LightningModule | None, network: str | None,
                       checkpoint_attr: str | None) -> tuple[ModuleTemplate | None, nn.Module | None]:
        """The module each stage copies, and the untrained network saved stages are restored onto.

        ``None`` for either means the architecture comes from the run's own model files (a resumed
        built-in run without ``model``, or a teacher file that carries its architecture).
        """
        if module is not None:
            template = ModuleTemplate(module, network)
            blank = detached_copy(template.network)
            if self.teacher_checkpoint is not None and not self.resume:
                teacher = load_teacher(self.teacher_checkpoint, detached_copy(blank), checkpoint_attr)
                template = ModuleTemplate(template.stage_module(teacher), network)
            return template, blank
        blank = None if model is None else detached_copy(model)
        if self.resume:
            return None, blank
        # a weights-only file loads into ``model`` in place; one that carries its architecture needs no ``model``
        teacher = model if self.teacher_checkpoint is None else load_teacher(self.teacher_checkpoint, model, checkpoint_attr)
        return ModuleTemplate(self.builtin_module(teacher), "student"), blank

    def builtin_module(self, network: nn.Module) -> SpiralModule:
        """The built-in classification module around ``network`` (no teacher: the callback distills)."""
        return SpiralModule(network, num_classes=self.datamodule.num_classes, optimizer=self.optimizer, scheduler=self.scheduler)

    def example_input(self, given: torch.Tensor | None) -> torch.Tensor:
        """The batch of one that traces the network: given, the module's, the data's shape, or a training batch."""
        if given is None and self.builtin:
            given = data_example(self.datamodule)
        if self.template is None:
            return given
        return self.template.example_input(given, self.datamodule)

    def check_before_training(self) -> None:
        """Everything that can fail later, tried now on copies (see the module docstring)."""
        network = self.template.network
        check_target_reachable(self.probe_callback, network, self.example, schedule=self.schedule,
                               max_stages=self.max_stages, target_macs_ratio=self.target_macs_ratio)
        if self.blank is not None:
            check_round_trip(network, self.blank, self.example, self.probe_callback)
        self.distillation_callbacks(network)  # the callback checks its arguments (weight, outputs) when built
        if not self.builtin:  # the built-in module builds its optimizer once when constructed
            check_module_optimizers(self.template)
        check_monitor_is_logged(self.template, self.datamodule, self.monitor)

    # --------------------------------------------------------------------------------- helpers
    def pruning_overrides(self) -> dict[str, Any]:
        """What every stage's PruningCallback gets from the driver: the network and its example input."""
        overrides: dict[str, Any] = {"attr": self.template.attr, "example_input": self.example}
        if self.verbose != 1:  # 1: as configured
            overrides["verbose"] = self.verbose
        return overrides

    def distillation_callbacks(self, teacher: nn.Module) -> list[L.Callback]:
        """The stage's DistillationCallback (none without a loss): the one engine for every module."""
        if self.loss is None:
            return []
        return [DistillationCallback(teacher, loss=self.loss, weight=self.distill_weight, attr=self.template.attr,
                                     outputs=self.outputs, mode=self.distill_mode, cache_teacher=self.cache_teacher,
                                     mixing=self.mixing, mixing_alpha=self.mixing_alpha)]

    def check_waypoint_lr_scale(self, scale: float) -> float:
        """``waypoint_lr_scale`` as a float > 0; other than 1 only where a MACs schedule makes waypoints."""
        scale = check_positive("waypoint_lr_scale", scale, hint="0.2 trains the waypoint stages at a fifth of the learning rate.")
        if scale != 1.0 and self.stage_targets is None:
            raise SpiralConfigError(f"`waypoint_lr_scale`={scale!r} scales the learning rate of a schedule's waypoint stages, "
                                    "but `schedule`='constant' has none: use schedule=cubic|geometric|linear or waypoint_lr_scale=1.0.")
        return scale

    def check_mixing_applies(self) -> None:
        """``mixing`` works through the stages' distillation, on float images."""
        if self.loss is None:
            raise SpiralConfigError(f"`mixing`={self.mixing!r} mixes the batches the stages distil on, but there is no "
                                    "distillation `loss`: set one (e.g. KDLoss(alpha=0.9)) or `mixing`=None.")
        check_mixable(self.example)

    def load_network(self, path: Path) -> nn.Module:
        """A saved stage's network: restored onto a fresh copy of the untrained one, or from its registry spec."""
        return load_model(path) if self.blank is None else restore(detached_copy(self.blank), path)


__all__ = ["BUILTIN_KEY", "TEACHER_MODES", "SpiralSetup", "TeacherMode"]
