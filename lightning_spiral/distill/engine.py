"""The distillation engine: one implementation behind ``SpiralModule`` and ``DistillationCallback``.

:class:`Distiller` owns everything a distillation step needs besides the student:

* the teacher, frozen (eval mode, ``requires_grad=False``, by :func:`~lightning_spiral.distill.base.freeze_teacher`)
  unless ``SpiralModule`` trains it in mutual learning;
* the loss — a :class:`DistillationLoss`, a :class:`FeatureLoss` or a :class:`WeightedSum` — and
  the float32 math that evaluates it (:func:`~lightning_spiral.distill.combine.distillation_terms`);
* feature taps on student and teacher (:class:`FeatureTaps`), hooked after pruning, closed at teardown;
* the optional teacher output cache (:class:`TeacherOutputCache`);
* the output selector (``outputs=``) that picks one tensor from networks returning structures
  (Hugging Face ``ModelOutput``, dicts, tuples), applied to student and teacher alike.

The hooks that call it live in ``SpiralModule`` and ``DistillationCallback``; nothing here needs a Trainer.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from lightning_spiral.distill import KDLoss
    >>> teacher = nn.Linear(4, 3)
    >>> distiller = Distiller(teacher, KDLoss(temperature=4.0, alpha=1.0))
    >>> distiller.freeze_teacher()
    >>> x = torch.ones(2, 4)
    >>> total, terms = distiller.compute(teacher(x), x, torch.tensor([0, 1]))
    >>> round(total.item(), 6), list(terms)
    (0.0, ['distill'])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as L
import torch
import torch.nn as nn
from lightning.fabric.utilities.apply_func import move_data_to_device

from lightning_spiral.checks import check_bool, is_integer, refuse
from lightning_spiral.distill.base import freeze_teacher
from lightning_spiral.distill.combine import DistillationInputs, distillation_terms, feature_paths, loss_terms, prepare_terms
from lightning_spiral.distill.mixing import MixedBatch
from lightning_spiral.distill.taps import FeatureTaps
from lightning_spiral.distill.teacher_cache import TeacherOutputCache
from lightning_spiral.errors import SpiralConfigError

#: ``None`` (the default rule), a dict key or attribute name, a tuple index, or a function of the output.
OutputSelector = str | int | Callable[[Any], torch.Tensor] | None
#: Every term's unweighted value, by name.
Terms = dict[str, torch.Tensor]

_ALLOWED_OUTPUTS = (
    "None (a tensor as is; else the first tensor of a tuple/list, a dict's 'logits', or `.logits`), a dict key or "
    "attribute name (str), a tuple index (int), or a function of the output, e.g. `outputs=lambda out: out.logits`"
)


def check_outputs(outputs: OutputSelector) -> OutputSelector:
    """Validate an output selector at construction time."""
    if outputs is None or callable(outputs) or isinstance(outputs, str) or is_integer(outputs):
        return outputs
    raise refuse("outputs", outputs, _ALLOWED_OUTPUTS)


def _default_selection(output: Any) -> Any:
    if isinstance(output, Mapping):
        return output.get("logits")
    if isinstance(output, (tuple, list)):
        return next((item for item in output if isinstance(item, torch.Tensor)), None)
    return getattr(output, "logits", None)


def _selection(output: Any, outputs: OutputSelector) -> Any:
    if outputs is None:
        return _default_selection(output)
    if isinstance(outputs, str):
        return output.get(outputs) if isinstance(output, Mapping) else getattr(output, outputs, None)
    if isinstance(outputs, int):
        return output[outputs] if isinstance(output, (tuple, list)) and -len(output) <= outputs < len(output) else None
    return outputs(output)


def select_output(output: Any, outputs: OutputSelector = None) -> torch.Tensor:
    """The tensor to distil from a network's ``output``; a tensor output is used as it is.

    Example:
        >>> import torch
        >>> logits = torch.zeros(2, 3)
        >>> select_output({"loss": torch.tensor(1.0), "logits": logits}) is logits
        True
        >>> select_output((torch.ones(2, 8), logits), outputs=1) is logits
        True
    """
    if isinstance(output, torch.Tensor):
        return output
    selected = _selection(output, outputs)
    if not isinstance(selected, torch.Tensor):
        raise SpiralConfigError(
            f"`outputs`={outputs!r} cannot select a tensor from a network output of type {type(output).__name__} "
            f"(found {type(selected).__name__}). Allowed: {_ALLOWED_OUTPUTS}."
        )
    return selected


@dataclasses.dataclass
class NetworkCall:
    """The arguments a network was called with, so the teacher can be called the same way."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, inputs: "Any | NetworkCall") -> "NetworkCall":
        """``inputs`` itself if it is a call already, else a call with the one positional argument ``inputs``."""
        return inputs if isinstance(inputs, NetworkCall) else cls((inputs,))

    def __call__(self, network: nn.Module) -> Any:
        return network(*self.args, **self.kwargs)

    @property
    def tensor(self) -> torch.Tensor | None:
        """The single input tensor of the call, or ``None`` when it takes anything else."""
        single = len(self.args) == 1 and not self.kwargs and isinstance(self.args[0], torch.Tensor)
        return self.args[0] if single else None


def device_of(network: nn.Module) -> torch.device:
    """Where the network's first parameter (or buffer) lives; the CPU for a network with neither."""
    tensor = next(network.parameters(), None)
    if tensor is None:
        tensor = next(network.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def first_training_batch(trainer: L.Trainer) -> Any:
    """One batch of this fit's training data, used to build the loss's learnable parts."""
    from lightning_spiral.pruning.callback import training_dataloader  # here: the pruning package imports model I/O

    return next(iter(training_dataloader(trainer, needed_for="Building the feature terms of the distillation loss")))


class Distiller:
    """Teacher, loss, feature taps, teacher cache and output selection of one distillation.

    Args:
        teacher: the network to distil from.
        loss: a :class:`DistillationLoss`, :class:`FeatureLoss` or :class:`WeightedSum`.
        outputs: which tensor of a structured network output to distil (see :func:`select_output`).
        cache_teacher: reuse the teacher's outputs for inputs seen before (logit terms only).
        frozen: ``False`` only for mutual learning, where the caller trains the teacher.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from lightning_spiral.distill import LogitMSELoss
        >>> distiller = Distiller(nn.Linear(4, 2), LogitMSELoss(alpha=1.0), outputs="logits")
        >>> total, _ = distiller.compute({"logits": torch.zeros(3, 2)}, torch.zeros(3, 4), None)
        >>> total.shape, total.dtype
        (torch.Size([]), torch.float32)
    """

    def __init__(
        self,
        teacher: nn.Module,
        loss: nn.Module,
        outputs: OutputSelector = None,
        cache_teacher: bool = False,
        frozen: bool = True,
    ) -> None:
        loss_terms(loss)  # refuses anything but the three loss kinds
        self.teacher = teacher
        self.loss = loss
        self.outputs = check_outputs(outputs)
        self.frozen = check_bool("frozen", frozen)
        self.cache_teacher = check_bool("cache_teacher", cache_teacher)
        if self.cache_teacher and (not self.frozen or self.has_features):
            raise SpiralConfigError(
                "`cache_teacher`=True needs a frozen teacher and a loss of logit terms only (no mutual mode, no feature "
                f"paths); got feature paths {feature_paths(loss)} and a teacher that is {'' if self.frozen else 'not '}frozen."
            )
        self.cache: TeacherOutputCache | None = None
        self._taps: tuple[FeatureTaps, FeatureTaps] | None = None

    @property
    def has_features(self) -> bool:
        """Whether the loss reads tapped features (and so may have adapters to build)."""
        return any(feature_paths(self.loss))

    def freeze_teacher(self) -> None:
        """Eval mode (frozen BatchNorm, no dropout) and no gradients; nothing in mutual mode."""
        if self.frozen:
            freeze_teacher(self.teacher)

    # ----------------------------------------------------------------------------- fit lifecycle
    def attach(self, student: nn.Module, datamodule: Any = None) -> None:
        """At the start of a fit, after pruning: hook the feature taps and start an empty teacher cache."""
        self.close()
        self.cache = TeacherOutputCache.for_data(datamodule) if self.cache_teacher else None
        student_paths, teacher_paths = feature_paths(self.loss)
        if student_paths or teacher_paths:
            self._taps = (FeatureTaps(student, student_paths), FeatureTaps(self.teacher, teacher_paths))

    def prepare(self, student: nn.Module, inputs: Any, target: Any) -> None:
        """Build the loss's learnable parts (adapters) from one batch, in eval mode: BatchNorm statistics stay put."""
        if not self.has_features:
            return
        call, target = move_data_to_device((NetworkCall.of(inputs), target), device_of(student))
        was_training = student.training
        student.eval()
        try:
            with torch.no_grad():
                student_output = select_output(call(student), self.outputs)
                prepare_terms(self.loss, self.inputs_of(student_output, self.teacher_output(call), target))
        finally:
            student.train(was_training)

    def close(self) -> None:
        """Remove the feature hooks, so they do not follow the student into the next stage."""
        for taps in self._taps or ():
            taps.close()
        self._taps = None

    def start_epoch(self, epoch: int) -> None:
        """Move temperature schedules (any loss part with ``set_epoch``) to ``epoch``."""
        for module in self.loss.modules():
            if hasattr(module, "set_epoch"):
                module.set_epoch(epoch)

    def end_epoch(self, epoch: int) -> None:
        """Drop the cache (with a warning) when inputs did not repeat after the first epoch."""
        if self.cache is not None and not self.cache.keep_after_epoch(epoch):
            self.cache = None

    # ------------------------------------------------------------------------------- loss of a batch
    def teacher_output(self, inputs: Any) -> torch.Tensor:
        """The teacher's selected output on ``inputs`` (a tensor or a :class:`NetworkCall`).

        Taken from the cache, or computed without gradients unless the teacher is trained (mutual mode).
        """
        call = NetworkCall.of(inputs)
        key = self._cache_key(call)
        cached = self.cache.lookup(key) if key is not None else None
        if cached is not None:
            return cached
        with torch.set_grad_enabled(not self.frozen and torch.is_grad_enabled()):
            output = select_output(call(self.teacher), self.outputs)
        if key is not None:
            self.cache.store(key, output)
        return output

    def _cache_key(self, call: NetworkCall) -> torch.Tensor | None:
        if self.cache is None:
            return None
        if call.tensor is None:
            raise SpiralConfigError(
                "`cache_teacher`=True keys the cache by the network's input tensor, but the network was called with "
                f"{len(call.args)} positional and {sorted(call.kwargs)} keyword arguments. Set `cache_teacher=False`."
            )
        return call.tensor

    def inputs_of(self, student_output: torch.Tensor, teacher_output: torch.Tensor, target: Any) -> DistillationInputs:
        """Selected outputs, target and the features the taps recorded in the last forward passes."""
        student_features, teacher_features = ({}, {}) if self._taps is None else (self._taps[0].features, self._taps[1].features)
        return DistillationInputs(student_output, teacher_output, target, dict(student_features), dict(teacher_features))

    def terms(self, student_output: torch.Tensor, teacher_output: torch.Tensor, target: Any) -> tuple[torch.Tensor, Terms]:
        """The float32 weighted total and every term's unweighted value, given both selected outputs."""
        return distillation_terms(self.loss, self.inputs_of(student_output, teacher_output, target))

    def compute(self, student_output: Any, inputs: Any, target: Any,
                mixed: MixedBatch | None = None) -> tuple[torch.Tensor, Terms]:
        """``(total, terms)`` of one batch; the teacher runs on ``inputs`` (a tensor or a :class:`NetworkCall`) once.

        ``mixed``: the inputs were mixed (:mod:`~lightning_spiral.distill.mixing`), so every term is
        ``lam`` × its value on ``target`` + ``(1 - lam)`` × its value on ``target[permutation]``.
        """
        student = select_output(student_output, self.outputs)
        teacher = self.teacher_output(inputs).detach()
        if mixed is None:
            return self.terms(student, teacher, target)
        (total, terms), (other_total, other_terms) = (self.terms(student, teacher, labels)
                                                      for labels in (target, target[mixed.permutation]))
        lam = mixed.lam
        return lam * total + (1 - lam) * other_total, {name: lam * terms[name] + (1 - lam) * other_terms[name] for name in terms}
