"""``SpiralModule``: a frozen teacher and a trainable student in one LightningModule.

One shared step serves train, validation and test. Training uses the distillation loss when a
teacher and a loss are given, plain cross-entropy otherwise (that is how stage 0 trains the teacher).
Validation and test always log the student's cross-entropy and top-1 (and top-5 when there are more
than 5 classes) through torchmetrics, as ``val/top1``, ``test/top1``, ... The module knows nothing
about pruning: :class:`~lightning_spiral.PruningCallback` changes ``self.student`` before the
optimizer is built.

Example:
    >>> import functools, torch
    >>> from lightning_spiral import SpiralModule, KDLoss
    >>> from lightning_spiral.models import build_model
    >>> teacher = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    >>> student = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    >>> module = SpiralModule(student, teacher, loss=KDLoss(temperature=4.0, alpha=0.9), num_classes=10,
    ...                       optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9))
    >>> any(p.requires_grad for p in module.teacher.parameters())
    False
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, Literal

import lightning.pytorch as L
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from lightning_spiral.checks import check_bool, check_int, check_positive, refuse
from lightning_spiral.distill.combine import feature_paths
from lightning_spiral.distill.base import freeze_teacher
from lightning_spiral.distill.engine import Distiller, Terms, first_training_batch, select_output
from lightning_spiral.errors import SpiralConfigError, StageFailedError
from lightning_spiral.io import CHECKPOINT_KEY, rebuild
from lightning_spiral.models.spec import ModelSpec, spec_of
from lightning_spiral.module_network import check_network, shown

Split = Literal["train", "val", "test"]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]

#: Scheduler arguments that mean "length of the run"; filled with the stage's ``max_epochs`` if unset.
_HORIZON_ARGUMENTS = ("T_max", "total_iters")


def default_optimizer(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum 0.9, lr 0.05, weight decay 5e-4 (the CIFAR recipe of FACTS.md)."""
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)


class SpiralModule(L.LightningModule):
    """Teacher (frozen: eval mode, no gradients, not in the optimizer) + student.

    Args:
        student: the network being trained (and pruned by :class:`~lightning_spiral.PruningCallback`);
            ``None`` only in ``SpiralModule.load_from_checkpoint(path)``, which rebuilds the pruned
            student and teacher from the architecture specs stored in the checkpoint.
        teacher: a trained network whose outputs the student learns from; ``None`` trains the
            student on labels alone.
        loss: a :class:`~lightning_spiral.distill.DistillationLoss`; ignored without a teacher.
        num_classes: number of classes (sets up top-1, and top-5 when ``num_classes > 5``).
        optimizer: a partial that takes the student's parameters (``hydra`` ``_partial_: true``);
            ``None`` uses :func:`default_optimizer`. It is built once here on those parameters and
            dropped (:func:`check_optimizer`), so a value torch refuses (``lr=-1``) fails now, not in the fit.
        scheduler: a partial that takes the optimizer; if it has a ``T_max`` / ``total_iters``
            argument left unset, the stage's ``max_epochs`` fills it. Stepped once per epoch;
            tried here on the throwaway optimizer like ``optimizer``.
        mutual: deep mutual learning (Zhang et al. 2018, https://arxiv.org/abs/1706.00384): the
            teacher is trained too, from the labels and the student, as the optimizer's second
            parameter group (``teacher_lr`` overrides its learning rate). Logit losses only.
        teacher_lr: learning rate of the teacher's group in mutual mode (``None``: the student's).
        cache_teacher: compute the teacher's logits once per training sample and reuse them in
            later epochs (:class:`~lightning_spiral.distill.teacher_cache.TeacherOutputCache`).
            Refused when the datamodule's ``augment`` is on; dropped with a warning if inputs
            turn out not to repeat. Logit terms only (features are not cached).

    Distillation runs through :class:`~lightning_spiral.distill.engine.Distiller` (``self.distiller``),
    the engine :class:`~lightning_spiral.DistillationCallback` uses too: it freezes the teacher, taps
    features, caches teacher outputs and evaluates the loss in float32. Feature terms (FitNets,
    attention transfer, RKD on features) are tapped at the start of every fit, after pruning; their
    learnable parts (adapters, a learned temperature) are part of ``self.loss`` and so join the
    optimizer, and each term is logged as ``train/loss/<name>``.
    """

    def __init__(
        self,
        student: nn.Module | None = None,
        teacher: nn.Module | None = None,
        loss: nn.Module | None = None,
        num_classes: int = 10,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        mutual: bool = False,
        teacher_lr: float | None = None,
        cache_teacher: bool = False,
    ) -> None:
        super().__init__()
        _check_networks(student, teacher, loss)
        check_int("num_classes", num_classes, 2)
        check_bool("mutual", mutual)
        check_positive("teacher_lr", teacher_lr, none_ok=True, hint="None uses the student's learning rate.")
        check_bool("cache_teacher", cache_teacher)
        if mutual and (teacher is None or any(feature_paths(loss))):
            raise SpiralConfigError("`mutual`=True needs a teacher and a loss of logit terms only (no feature paths).")
        if cache_teacher and teacher is None:
            raise SpiralConfigError("`cache_teacher`=True needs a `teacher` (its outputs are what is cached), got None.")
        check_optimizer(optimizer, scheduler, parameter_groups(student, loss, teacher if mutual else None, teacher_lr))
        self.save_hyperparameters(ignore=["student", "teacher", "loss", "optimizer", "scheduler"])
        self.student = student
        self.teacher = teacher
        self.loss = loss
        self.num_classes = num_classes
        self.optimizer_factory = optimizer or default_optimizer
        self.scheduler_factory = scheduler
        self.mutual = bool(mutual)
        self.teacher_lr = teacher_lr
        self.cache_teacher = bool(cache_teacher)
        self.distiller: Distiller | None = None
        self._bind_distiller()
        self.train_metrics = self._metrics("train")
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")

    def _bind_distiller(self) -> None:
        """The engine over this module's teacher and loss (again after a checkpoint rebuilt the teacher)."""
        if self.teacher is not None and self.loss is not None:
            self.distiller = Distiller(self.teacher, self.loss, cache_teacher=self.cache_teacher, frozen=not self.mutual)
        self._freeze_teacher()

    def _freeze_teacher(self) -> None:
        # also without a loss: `load_from_checkpoint` rebuilds the teacher but not the loss
        if self.teacher is not None and not self.mutual:
            freeze_teacher(self.teacher)

    def _metrics(self, split: Split) -> MetricCollection:
        metrics: dict[str, MulticlassAccuracy] = {"top1": MulticlassAccuracy(self.num_classes, top_k=1, average="micro")}
        if self.num_classes > 5:
            metrics["top5"] = MulticlassAccuracy(self.num_classes, top_k=5, average="micro")
        return MetricCollection(metrics, prefix=f"{split}/")

    def train(self, mode: bool = True) -> "SpiralModule":
        """Switch the student's mode; a frozen teacher stays in eval mode (frozen BatchNorm, no dropout)."""
        super().train(mode)
        self._freeze_teacher()
        return self

    # ------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the architecture specs (with pruning history) so a fresh process can rebuild the shapes."""
        checkpoint[CHECKPOINT_KEY] = {
            name: None if network is None or spec_of(network) is None else spec_of(network).to_dict()
            for name, network in (("student", self.student), ("teacher", self.teacher))
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild student/teacher with the checkpoint's pruned shapes before Lightning loads the weights."""
        specs = checkpoint.get(CHECKPOINT_KEY) or {}
        state = checkpoint["state_dict"]
        if specs.get("student") is not None:
            self.student = _matching_network(self.student, specs["student"], state, "student.")
        if specs.get("teacher") is not None:
            self.teacher = _matching_network(self.teacher, specs["teacher"], state, "teacher.")
            self._bind_distiller()

    # ------------------------------------------------------------------------ distillation engine
    def setup(self, stage: str) -> None:
        """After pruning (callbacks' ``setup`` ran first): hook feature taps, build adapters, start the cache."""
        if stage != "fit" or self.distiller is None:
            return
        self.distiller.attach(self.student, self.trainer.datamodule)
        if self.distiller.has_features:
            x, target = first_training_batch(self.trainer)
            self.distiller.prepare(self.student, x, target)

    def teardown(self, stage: str) -> None:
        if stage == "fit" and self.distiller is not None:  # hooks must not follow the student into the next stage
            self.distiller.close()

    def on_train_epoch_start(self) -> None:
        if self.distiller is not None:
            self.distiller.start_epoch(self.current_epoch)

    def on_train_epoch_end(self) -> None:
        if self.distiller is not None:
            self.distiller.end_epoch(self.current_epoch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return select_output(self.student(x))  # (N, C): logits, also of networks returning `.logits`

    def training_loss(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Terms]:
        """The loss the student is trained with (distillation, or CE without a teacher), its logits and terms."""
        logits = self(x)  # (N, C)
        if self.distiller is None:
            return F.cross_entropy(logits.float(), target), logits, {}
        if self.mutual:
            return self.mutual_loss(logits, x, target)
        total, terms = self.distiller.compute(logits, x, target)
        return total, logits, terms

    def mutual_loss(self, logits: torch.Tensor, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Terms]:
        """Deep mutual learning: student and teacher each learn from the labels and the other's detached logits."""
        teacher_logits = self.distiller.teacher_output(x)  # (N, C), with gradients: the teacher is trained too
        total, terms = self.distiller.terms(logits, teacher_logits.detach(), target)
        teacher_total, _ = self.distiller.terms(teacher_logits, logits.detach(), target)
        return total + teacher_total, logits, {**terms, "teacher": teacher_total.detach()}

    def shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: Split) -> torch.Tensor:
        x, target = batch
        terms: Terms = {}
        if split == "train":
            loss, logits, terms = self.training_loss(x, target)
        else:  # validation and test: the student's own cross-entropy, comparable across stages
            logits = self(x)
            loss = F.cross_entropy(logits.float(), target)
        if not torch.isfinite(loss):
            raise StageFailedError(
                f"The {split} loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}. "
                "Hint: lower the learning rate or the distillation temperature."
            )
        metrics = getattr(self, f"{split}_metrics")
        metrics.update(logits.detach(), target)
        on_step = split == "train"
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=not on_step)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=split != "train", batch_size=len(x))
        if len(terms) > 1:
            self.log_dict({f"train/loss/{name}": value for name, value in terms.items()}, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "test")

    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self.student, self.loss, self.teacher if self.mutual else None, self.teacher_lr)
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return optimizer
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        scheduler = with_horizon(self.scheduler_factory, epochs)(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def parameter_groups(student: nn.Module | None, loss: nn.Module | None, trained_teacher: nn.Module | None,
                     teacher_lr: float | None) -> list[dict[str, Any]]:
    """The optimizer's groups: the student's and the loss's parameters; the teacher's too when it is trained (mutual)."""
    networks = [network for network in (student, loss) if network is not None]
    groups: list[dict[str, Any]] = [{"params": [p for network in networks for p in network.parameters()]}]
    if trained_teacher is not None:
        groups.append({"params": list(trained_teacher.parameters())} | ({"lr": teacher_lr} if teacher_lr else {}))
    return groups


def check_optimizer(optimizer: OptimizerFactory | None, scheduler: SchedulerFactory | None,
                    groups: list[dict[str, Any]]) -> None:
    """Build the optimizer (and scheduler) once on ``groups`` and drop them: torch's own checks run now, not in fit.

    Building touches no parameter: the optimizer only keeps references and the scheduler only
    sets the learning rates of that throwaway optimizer. The scheduler gets the horizon
    ``configure_optimizers`` would give it (``T_max`` / ``total_iters`` of one epoch).
    """
    if not any(group["params"] for group in groups):
        groups = [{"params": [nn.Parameter(torch.zeros(1))]}]  # no network yet (load_from_checkpoint)
    built = _build("optimizer", optimizer or default_optimizer, groups, "a factory of a torch.optim.Optimizer")
    if not isinstance(built, torch.optim.Optimizer):
        raise refuse("optimizer", shown(optimizer), "a factory of a torch.optim.Optimizer",
                     f"It returned {type(built).__name__}.")
    if scheduler is not None:
        _build("scheduler", with_horizon(scheduler, 1), built, "a factory of a scheduler that takes the optimizer")


def _build(name: str, factory: Any, argument: Any, allowed: str) -> Any:
    """``factory(argument)``; torch's ``ValueError`` / ``TypeError`` becomes one line naming ``name``."""
    if not callable(factory):
        raise refuse(name, shown(factory), f"None or {allowed} (a functools.partial, Hydra's `_partial_: true`)")
    try:
        return factory(argument)
    except (ValueError, TypeError) as err:
        reason = " ".join(str(err).split())
        raise refuse(name, shown(factory), allowed, f"torch refused it ({type(err).__name__}: {reason}).") from err


def _check_networks(student: nn.Module | None, teacher: nn.Module | None, loss: nn.Module | None) -> None:
    """Networks are modules or ``None``; a teacher needs a loss to distill with."""
    check_network("student", student, none_ok=True)
    check_network("teacher", teacher, none_ok=True)
    check_network("loss", loss, none_ok=True)
    if teacher is not None and loss is None:
        raise SpiralConfigError("`loss` is None but a `teacher` was given; pass a DistillationLoss such as KDLoss().")


def _matching_network(network: nn.Module | None, spec: dict[str, Any], state: dict[str, torch.Tensor], prefix: str) -> nn.Module:
    """``network`` if its shapes match the checkpoint's, else the spec's architecture rebuilt (weights follow)."""
    if network is not None:
        shapes = {name: tensor.shape for name, tensor in network.state_dict().items()}
        stored = {name.removeprefix(prefix): t.shape for name, t in state.items() if name.startswith(prefix)}
        if shapes == stored:
            return network
    return rebuild(ModelSpec.from_dict(spec))


def with_horizon(factory: SchedulerFactory, epochs: int) -> SchedulerFactory:
    """Bind ``T_max`` / ``total_iters`` of a scheduler partial to ``epochs`` when the partial left it unset."""
    target = factory.func if isinstance(factory, functools.partial) else factory
    bound = factory.keywords if isinstance(factory, functools.partial) else {}
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return factory
    for name in _HORIZON_ARGUMENTS:
        if name in parameters and name not in bound:
            return functools.partial(factory, **{name: epochs})
    return factory
