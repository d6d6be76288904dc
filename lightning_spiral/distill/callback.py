"""``DistillationCallback``: knowledge distillation added to a user's own LightningModule by one callback.

The user's module stays as written. During ``fit`` the callback wraps the *instance's*
``training_step`` so that the loss it returns becomes

    loss = user_loss + weight * distill(student_out, teacher_out, target)     (mode="add")
    loss = weight * distill(student_out, teacher_out, target)                 (mode="replace")

where ``student_out`` is the output of the first call of the user's network inside that step
(captured by a forward hook that exists only while the step runs, with the arguments of that call)
and ``teacher_out`` comes from the frozen teacher run on the same arguments — so a step that
reshapes the batch before calling its network (an autoencoder flattening images) distils as it
should. The teacher, the loss math, feature taps, the teacher cache and ``outputs=`` live in one
engine shared with :class:`~lightning_spiral.SpiralModule`
(:class:`~lightning_spiral.distill.engine.Distiller`). ``mode="replace"`` is for losses carrying their
own label term (``KDLoss(alpha=0.9)``): ``SpiralModule`` built without a teacher (it returns plain
CE) plus ``DistillationCallback(teacher, KDLoss(alpha=0.9), attr="student", mode="replace")``
computes the same loss as ``SpiralModule(student, teacher, loss=KDLoss(alpha=0.9))``.

Feature losses (FitNets, attention transfer, RKD) read module paths relative to the network ``attr``
selects. Their learnable parts (adapters, a learned temperature) are built in ``setup`` from one
training batch in eval mode, after pruning — list ``PruningCallback`` *before* this callback, since
Lightning calls ``setup`` in list order — and join the user's optimizer as a new parameter group in
``on_fit_start`` (optimizers exist by then); under DDP their gradients are averaged across ranks in
``on_before_optimizer_step`` (they are not inside the DDP wrapper).

Why a callback, and not a wrapper module or a mixin:

* **wrapper LightningModule** — the user would fit a different object; its checkpoints would
  hold the teacher and prefixed keys, so ``LitModel.load_from_checkpoint`` breaks; every hook
  and attribute of the user's module would need forwarding.
* **mixin** — changes the user's class, and the teacher becomes a submodule: it lands in the
  checkpoint, in ``self.parameters()`` (so in the user's optimizer) and inside the DDP wrapper.
* **callback** — one line in the Trainer's ``callbacks``. The teacher belongs to the callback, so
  it is not in the module's ``state_dict``, parameters or DDP wrapper. Patching the instance works
  under every strategy because Lightning looks ``training_step`` up by attribute: directly, or
  through DDP's forward redirection (``_ForwardRedirection`` in ``lightning/pytorch/strategies/strategy.py``),
  which calls ``getattr(module, "training_step")`` inside ``DDP.forward`` — so gradients of the
  combined loss are synchronised as usual. Under ``bf16-mixed`` the step (teacher included) runs
  in autocast; the losses compute in float32.

Example:
    >>> import lightning.pytorch as L
    >>> from lightning_spiral import DistillationCallback, KDLoss, PruningCallback
    >>> callbacks = [PruningCallback(amount=0.5), DistillationCallback(teacher, KDLoss(alpha=1.0), weight=0.5)]  # doctest: +SKIP
    >>> L.Trainer(callbacks=callbacks).fit(lit_model, datamodule)  # lit_model unchanged  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import lightning.pytorch as L
import torch
import torch.nn as nn

from lightning_spiral.checks import check_choice, check_positive, refuse
from lightning_spiral.distill.engine import (
    Distiller,
    NetworkCall,
    OutputSelector,
    Terms,
    device_of,
    first_training_batch,
    select_output,
)
from lightning_spiral.distill.kd import KDLoss
from lightning_spiral.distill.mixing import Mixing, check_mixable, check_mixing, mix_batch, with_inputs
from lightning_spiral.errors import SpiralConfigError, StageFailedError
from lightning_spiral.module_network import network_of

BatchPart = Callable[[Any], Any]
CombineMode = Literal["add", "replace"]
LOG_NAME = "train/loss/distill"


def batch_inputs(batch: Any) -> Any:
    """The network input of a batch: the batch itself if it is a tensor, else its first item."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)) and batch:
        return batch[0]
    raise SpiralConfigError(
        f"Cannot find the inputs in a batch of type {type(batch).__name__}: the default takes `batch[0]` of a "
        "tuple or list. Pass `inputs=` a function returning the network input, e.g. `inputs=lambda b: b['image']`."
    )


def batch_targets(batch: Any) -> Any:
    """The labels of a batch: the second item of a tuple or list, else ``None``."""
    if isinstance(batch, (list, tuple)) and len(batch) >= 2:
        return batch[1]
    return None


def with_loss(output: Any, loss: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``output`` of a ``training_step`` (a loss tensor, a dict with ``"loss"``, or ``None``) with ``loss(old)`` as its loss."""
    if output is None:  # the user skipped this batch
        return None
    if isinstance(output, torch.Tensor):
        return loss(output)
    if isinstance(output, Mapping) and "loss" in output:
        return {**output, "loss": loss(output["loss"])}
    raise SpiralConfigError(
        f"`training_step` returned {type(output).__name__}; DistillationCallback combines its term with a loss tensor "
        "or with the 'loss' entry of a dict. Return one of those (or None to skip the batch)."
    )


def add_param_group(optimizer: torch.optim.Optimizer, params: list[nn.Parameter], schedulers: Sequence[Any]) -> None:
    """Add ``params`` with the settings of the optimizer's first group; its schedulers treat the group like the first."""
    settings = {key: value for key, value in optimizer.param_groups[0].items() if key != "params"}
    optimizer.add_param_group({**settings, "params": params})
    for scheduler in schedulers:
        if getattr(scheduler, "optimizer", None) is not optimizer:
            continue
        for name in ("base_lrs", "min_lrs", "_last_lr"):  # per-group lists of LRScheduler / ReduceLROnPlateau
            values = getattr(scheduler, name, None)
            if isinstance(values, list) and len(values) == len(optimizer.param_groups) - 1:
                values.append(values[0])


class DistillationCallback(L.Callback):
    """Distil a frozen teacher into the network of any LightningModule, by adding to (or replacing) its loss.

    Args:
        teacher: the trained network to distil from. It is frozen at ``setup`` (eval mode, no
            gradients), moved to the module's device and dtype when fit starts, and never saved in
            the module's checkpoint.
        loss: a :class:`DistillationLoss` (``KDLoss``, ``DKDLoss``, ``LogitMSELoss``), a
            :class:`FeatureLoss` (``FitNetLoss``, ``AttentionTransferLoss``, ``RKDLoss``) or a
            :class:`WeightedSum` of them. Default ``KDLoss(temperature=4.0, alpha=1.0)`` — the pure
            ``T² · KL`` term, since the user's loss already has the labels.
        weight: factor of the distillation loss (> 0).
        inputs: function from a batch to the teacher's input; default: the arguments the student
            network was called with in the step (``batch[0]`` for the one look at a batch in ``setup``).
        targets: function from a batch to the labels given to ``loss``; default ``batch[1]``.
        attr: attribute of the LightningModule holding the student network; ``None`` means
            ``student`` when the module has one, else the module itself (its ``forward``). The
            same rule as ``PruningCallback(attr=...)``; feature paths are relative to this network.
        outputs: the tensor to distil in what student and teacher return (``None``, a key or
            attribute name, a tuple index or a function; see :func:`~lightning_spiral.distill.engine.select_output`).
        mode: ``"add"``: the step's loss plus ``weight`` × the distillation loss; ``"replace"``:
            ``weight`` × the distillation loss alone (one that carries its own label term).
        cache_teacher: reuse the teacher's outputs in later epochs when inputs repeat exactly;
            refused when the datamodule's ``augment`` is on, dropped with a warning when inputs do
            not repeat. Logit terms only.
        mixing: function matching (:mod:`~lightning_spiral.distill.mixing`): ``"mixup"`` or
            ``"cutmix"`` mixes each training batch's images before the step runs, so student and
            teacher see the same mixed image, and the loss's label term is mixed alike. Needs
            ``mode="replace"`` (your step's own loss would score mixed images against unmixed
            labels), float image batches ``(inputs, labels, ...)``, and no ``cache_teacher``.
        mixing_alpha: the Beta(alpha, alpha) concentration the mixing weight is drawn from.

    Logged per epoch: ``train/loss/distill`` (the unweighted distillation loss) and, for a
    :class:`WeightedSum`, each term as ``train/loss/<name>``. A non-finite distillation loss raises
    :class:`~lightning_spiral.errors.StageFailedError`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> teacher = nn.Linear(4, 3)
        >>> callback = DistillationCallback(teacher, weight=0.5)
        >>> x = torch.ones(2, 4)
        >>> round(callback.distillation_term(teacher(x), x, torch.tensor([0, 1])).item(), 6)
        0.0
    """

    def __init__(
        self,
        teacher: nn.Module,
        loss: nn.Module | None = None,
        weight: float = 1.0,
        inputs: BatchPart | None = None,
        targets: BatchPart | None = None,
        attr: str | None = None,
        outputs: OutputSelector = None,
        mode: CombineMode = "add",
        cache_teacher: bool = False,
        mixing: Mixing | None = None,
        mixing_alpha: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(teacher, nn.Module):
            raise SpiralConfigError(f"`teacher` must be an nn.Module (the trained network), got {type(teacher).__name__}.")
        self.weight = check_positive("weight", weight, hint="Typical weights are 0.5-10.")
        for name, value, key in (("inputs", inputs, "image"), ("targets", targets, "label")):
            if value is not None and not callable(value):
                raise refuse(name, value, "None or a function of the batch",
                             f"For example `{name}=lambda batch: batch[{key!r}]`.")
        mode = check_choice("mode", mode, ("add", "replace"),
                            hint="'add': user loss + weight x distillation; 'replace': weight x distillation alone.")
        self.mixing, self.mixing_alpha = check_mixing(mixing, mixing_alpha, mode=mode, cache_teacher=cache_teacher)
        loss = loss if loss is not None else KDLoss(temperature=4.0, alpha=1.0)
        self.engine = Distiller(teacher, loss, outputs=outputs, cache_teacher=cache_teacher)
        self.inputs = inputs
        self.targets = targets or batch_targets
        self.attr = attr
        self.mode = mode
        self._network: nn.Module | None = None

    @property
    def teacher(self) -> nn.Module:
        return self.engine.teacher

    @property
    def loss(self) -> nn.Module:
        return self.engine.loss

    @loss.setter
    def loss(self, loss: nn.Module) -> None:
        """A new loss before a fit: the engine is rebuilt around it (and checks it)."""
        self.engine = Distiller(self.teacher, loss, outputs=self.engine.outputs, cache_teacher=self.engine.cache_teacher)

    # ----------------------------------------------------------------------------- Lightning hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.check_module(pl_module)
        self.engine.freeze_teacher()
        network = network_of(pl_module, self.attr)  # pruned already when PruningCallback is listed first
        self.teacher.to(device_of(network))
        self.engine.attach(network, trainer.datamodule)
        if self.engine.has_features or self.mixing:
            batch = first_training_batch(trainer)
            if self.mixing:
                check_mixable(batch_inputs(batch))
            if self.engine.has_features:
                self.engine.prepare(network, (self.inputs or batch_inputs)(batch), self.targets(batch))
        user_step = pl_module.training_step
        distilled = functools.wraps(user_step)(lambda *args, **kwargs: self.distilled_step(pl_module, user_step, *args, **kwargs))
        distilled.distilled_by = self  # marks our wrappers, so `restore` removes them all
        pl_module.training_step = distilled

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # here, not in `setup`: the strategy has moved (and maybe converted) the module and built the optimizer
        self._network = network_of(pl_module, self.attr)
        self.teacher.to(device=pl_module.device, dtype=pl_module.dtype)
        self.loss.to(pl_module.device)  # float32 stays: the loss math is float32
        params = self.learnable_parameters()
        if params and trainer.optimizers:
            if trainer.world_size > 1:  # every rank starts from rank 0's adapters
                for param, value in zip(params, trainer.strategy.broadcast([p.detach().cpu() for p in params], src=0)):
                    param.data.copy_(value)
            add_param_group(trainer.optimizers[0], params, [config.scheduler for config in trainer.lr_scheduler_configs])

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer) -> None:
        if trainer.world_size == 1:
            return
        for param in self.learnable_parameters():  # outside the DDP wrapper, so averaged here
            grad = param.grad if param.grad is not None else torch.zeros_like(param)
            param.grad = trainer.strategy.reduce(grad, reduce_op="mean")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.engine.start_epoch(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.engine.end_epoch(trainer.current_epoch)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.restore(pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.restore(pl_module)  # a failed fit skips `teardown`

    def restore(self, pl_module: L.LightningModule) -> None:
        """Give the module the ``training_step`` of its class back (removing every wrapper) and unhook the taps."""
        if hasattr(vars(pl_module).get("training_step"), "distilled_by"):
            del pl_module.training_step  # the class's method is visible again
        self.engine.close()
        self._network = None

    # ------------------------------------------------------------------------ override points
    def check_module(self, pl_module: L.LightningModule) -> None:
        """Refuse modules the callback cannot serve: manual optimization, or the teacher inside the module."""
        if not pl_module.automatic_optimization:
            raise SpiralConfigError(
                f"DistillationCallback combines its term with the loss `training_step` returns, but "
                f"{type(pl_module).__name__} uses manual optimization (`automatic_optimization` is False). "
                "Call `callback.distillation_term(...)` in your step instead."
            )
        if any(module is self.teacher for module in pl_module.modules()):
            raise SpiralConfigError(
                f"`teacher` is a submodule of {type(pl_module).__name__}: it would be trained, saved and handed to "
                "the optimizer. Keep the teacher outside the LightningModule."
            )

    def learnable_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the loss (adapters, a learned temperature)."""
        return [param for param in self.loss.parameters() if param.requires_grad]

    def distillation_term(self, student_output: Any, inputs: Any, target: Any) -> torch.Tensor:
        """The unweighted distillation loss of one batch; the teacher runs on ``inputs`` without gradients."""
        return self.engine.compute(student_output, inputs, target)[0]

    def distilled_step(self, pl_module: L.LightningModule, user_step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run the user's step with the student's first call captured, then combine the distillation loss with its loss."""
        network = self._network
        assert network is not None, "set in on_fit_start, before any training step"
        mixed = None
        if self.mixing:  # the step, the student and the teacher all see the mixed batch
            batch = args[0] if args else kwargs["batch"]
            mixed = mix_batch(batch_inputs(batch), self.mixing, self.mixing_alpha)
            args, kwargs = ((with_inputs(batch, mixed.inputs), *args[1:]), kwargs) if args else (
                args, kwargs | {"batch": with_inputs(batch, mixed.inputs)})
        captured: list[tuple[NetworkCall, Any]] = []
        handle = network.register_forward_hook(
            lambda _module, call_args, call_kwargs, output: captured.append((NetworkCall(call_args, call_kwargs), output)),
            with_kwargs=True,
        )
        try:
            output = user_step(*args, **kwargs)
        finally:
            handle.remove()
        if output is None:
            return None
        if not captured:
            raise SpiralConfigError(
                f"DistillationCallback needs the student's output, but {type(network).__name__} was not called during "
                f"`training_step` (`attr`={self.attr!r}). Pass `attr` naming the submodule your step calls on the "
                "inputs, e.g. `attr='net'`."
            )
        batch = args[0] if args else kwargs["batch"]
        call, student_output = captured[0]  # the first call of the network in the step
        student = select_output(student_output, self.engine.outputs)  # (N, ...)
        total, terms = self.engine.compute(student, call if self.inputs is None else self.inputs(batch), self.targets(batch),
                                           mixed=mixed)
        if not torch.isfinite(total):
            raise StageFailedError(
                f"The distillation loss became {total.item()} at epoch {pl_module.current_epoch}, step "
                f"{pl_module.global_step}. Hint: lower the learning rate or the distillation temperature."
            )
        self.log_terms(pl_module, total, terms, batch_size=len(student))
        if self.mode == "replace":
            return with_loss(output, lambda _user_loss: self.weight * total)
        return with_loss(output, lambda user_loss: user_loss + self.weight * total)

    def log_terms(self, pl_module: L.LightningModule, total: torch.Tensor, terms: Terms, batch_size: int) -> None:
        """``train/loss/distill`` and, when there are several terms, ``train/loss/<name>`` (epoch means)."""
        values = {LOG_NAME: total.detach()}
        if len(terms) > 1:
            values |= {f"train/loss/{name}": value.detach() for name, value in terms.items()}
        pl_module.log_dict(values, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)
