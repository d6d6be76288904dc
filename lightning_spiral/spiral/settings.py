"""The one settings record of a run, and the one place the driver's defaults live.

:class:`RunSettings` is a frozen record of everything that shapes a run — the spiral's own
settings, every argument of the pruning partial, the distillation loss with all its inner
parameters, optimizer, scheduler, the Trainer's arguments, the data (its class, arguments, and a
data file's size and SHA-256), the model and the seed — built once, after the arguments were
checked, written to ``report.json`` and compared whole on resume: the refusal lists every
differing key with its recorded and its new value. Only what cannot change a result is left out:
where the run goes (``output_dir``, ``overwrite``, ``resume``) and what it prints
(``verbose``, ``loggers``, the Trainer's progress bar, model summary and logging cadence).

:data:`DEFAULTS` holds the defaults of :class:`~lightning_spiral.Spiral`; ``conf/spiral/default.yaml``
reads the same values through the ``${spiral_default:name}`` resolver, so Python and the CLI agree.

Example:
    >>> DEFAULTS.schedule, DEFAULTS.target_macs_ratio, DEFAULTS.max_stages
    ('cubic', 0.3, 4)
    >>> default_stage_epochs(None, 4, "cubic")
    [1, 1, 1, 9]
    >>> RunSettings({"seed": 0}).differences({"seed": 1})
    [('seed', 1, 0)]
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import OmegaConf

from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.spiral.describe import describe, describe_network, describe_object, describe_partial, flatten

ABSENT = "<absent>"
DISPLAY_ONLY_TRAINER_KEYS = ("enable_progress_bar", "enable_model_summary", "log_every_n_steps", "logger",
                             "default_root_dir", "enable_checkpointing")
DISPLAY_ONLY_PRUNING_KEYS = ("verbose",)


@dataclasses.dataclass(frozen=True)
class SpiralDefaults:
    """The defaults of :class:`~lightning_spiral.Spiral` and of ``conf/spiral/default.yaml``.

    ``stage_epochs=None`` means one epoch for every waypoint stage and nine for the last with a
    MACs schedule (the winner of ``benchmarks/spiral_search.py``), three per stage with
    ``schedule='constant'``, where every stage is judged. ``max_accuracy_drop=None`` means 0.02
    for a key monitor (``val/top1`` by default).
    """

    teacher: str = "original"
    target_macs_ratio: float = 0.3
    schedule: str = "cubic"
    max_stages: int = 4
    max_accuracy_drop: float | None = None
    teacher_epochs: int = 20
    stage_epochs: int | None = None
    latency_repeats: int = 20
    timing_rounds: int = 5
    threads: int = 2
    distill_weight: float = 1.0
    cache_teacher: bool = False
    mixing: str | None = None
    mixing_alpha: float = 1.0
    waypoint_lr_scale: float = 1.0
    loggers: str = "auto"
    verbose: int = 1


DEFAULTS = SpiralDefaults()
DEFAULT_MAX_DROP = 0.02
OmegaConf.register_new_resolver("spiral_default", lambda name: getattr(DEFAULTS, name), replace=True)


def default_stage_epochs(stage_epochs: int | Sequence[int] | None, max_stages: int, schedule: str) -> Any:
    """``stage_epochs`` as given, or the default for ``max_stages`` stages of ``schedule`` (see :class:`SpiralDefaults`)."""
    if stage_epochs is not None:
        return stage_epochs
    return [3] * max_stages if schedule == "constant" else [1] * (max_stages - 1) + [9]


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that shapes a run, as plain nested values (see the module docstring).

    Args:
        values: the nested record; stored as canonical JSON, so the record is frozen all the way down.
    """

    values: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", json.loads(json.dumps(self.values, sort_keys=True)))

    @classmethod
    def of(cls, setup: Any, *, model: Any, module: Any) -> RunSettings:
        """The record of a :class:`~lightning_spiral.spiral.setup.SpiralSetup` whose arguments were checked."""
        pruning = describe_partial(setup.pruning_factory)
        trainer = describe_partial(setup.trainer_factory)
        return cls({
            "spiral": {
                "teacher": setup.teacher_mode, "target_macs_ratio": setup.target_macs_ratio, "schedule": setup.schedule,
                "max_stages": setup.max_stages, "monitor": setup.monitor.to_dict(), "network": setup.network_attr,
                "teacher_epochs": None if setup.teacher_checkpoint else setup.teacher_epochs,
                "stage_epochs": list(setup.stage_epochs), "teacher_checkpoint": describe(setup.teacher_checkpoint),
                "distill_weight": setup.distill_weight, "outputs": describe(setup.outputs),
                "cache_teacher": setup.cache_teacher, "mixing": setup.mixing, "mixing_alpha": setup.mixing_alpha,
                "waypoint_lr_scale": setup.waypoint_lr_scale,
                "latency_repeats": setup.latency_repeats,
                "timing_rounds": setup.timing_rounds,
                "threads": setup.threads, "quantize": setup.quantize.to_dict(),
            },
            "module": None if module is None else describe_object(module),
            "model": describe_network(model),
            "pruning": {key: value for key, value in pruning.items() if key not in DISPLAY_ONLY_PRUNING_KEYS},
            "distill": describe(setup.loss),
            "optimizer": describe(setup.optimizer),
            "scheduler": describe(setup.scheduler),
            "trainer": {key: value for key, value in trainer.items() if key not in DISPLAY_ONLY_TRAINER_KEYS},
            "data": describe_object(setup.datamodule),
            "seed": setup.seed,
        })

    def with_section(self, name: str, value: Any) -> RunSettings:
        """A copy with the section ``name`` replaced (a resumed run's model comes from its own files)."""
        return RunSettings({**self.values, name: value})

    def to_dict(self) -> dict[str, Any]:
        """A fresh copy of the nested values, for ``report.json``."""
        return json.loads(json.dumps(self.values))

    def differences(self, recorded: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
        """``(dotted key, recorded value, current value)`` for every key on which the two records differ."""
        old, new = flatten(recorded), flatten(self.values)
        return [(key, old.get(key, ABSENT), new.get(key, ABSENT)) for key in sorted(old.keys() | new.keys())
                if old.get(key, ABSENT) != new.get(key, ABSENT)]

    def check_resumable(self, recorded: Mapping[str, Any]) -> None:
        """Refuse to resume a run recorded with other settings, listing every difference."""
        differing = self.differences(recorded)
        if differing:
            shown = "; ".join(f"`{key}` recorded {old!r}, now {new!r}" for key, old, new in differing)
            raise SpiralConfigError(
                f"Cannot resume: {len(differing)} setting(s) differ from the run being resumed: {shown}. "
                "Resume with the recorded settings (report.json 'settings'), or start a new run."
            )


__all__ = ["DEFAULTS", "DEFAULT_MAX_DROP", "RunSettings", "SpiralDefaults", "default_stage_epochs"]
