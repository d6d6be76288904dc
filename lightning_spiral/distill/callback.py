"""``DistillationCallback``: knowledge distillation added to a user's own LightningModule by one callback.

The user's module stays as written. During ``fit`` the callback wraps the *instance's*
``training_step`` so that the loss it returns becomes

    loss = user_loss + weight * distill(student_logits, teacher_logits, target)

where ``student_logits`` is the first output of the user's network inside that step (captured by
a forward hook that exists only while the step runs) and ``teacher_logits`` comes from a frozen
teacher run on the same inputs. The original method is restored at ``teardown``, or in
``on_exception`` when the fit fails.

Why a callback, and not a wrapper module or a mixin:

* **wrapper LightningModule** — the user would fit a different object; its checkpoints would
  hold the teacher and prefixed keys, so ``LitModel.load_from_checkpoint`` breaks; every hook
  and attribute of the user's module (``configure_optimizers``, ``self.log``, ``hparams``, their
  own ``on_*`` hooks) would need forwarding, and Lightning only calls hooks on the module it was
  given.
* **mixin** — changes the user's class, and the teacher becomes a submodule: it lands in the
  checkpoint, in ``self.parameters()`` (so in the user's optimizer) and inside the DDP wrapper.
* **callback** — one line in the Trainer's ``callbacks``. The teacher belongs to the callback, so
  it is not in the module's ``state_dict``, parameters or DDP wrapper, and the user's optimizer is
  untouched. Patching the instance works under every strategy because Lightning looks
  ``training_step`` up by attribute: directly, or through DDP's forward redirection
  (``lightning/pytorch/strategies/strategy.py``, ``_ForwardRedirection``), which calls
  ``getattr(module, "training_step")`` inside ``DDP.forward`` — so gradients of the combined loss
  are synchronised as usual. Under ``bf16-mixed`` the step (teacher included) runs in autocast;
  the logit losses compute in float32. ``PruningCallback`` in the same Trainer prunes in ``setup``
  before any step, and the hook follows the pruned network because it is registered per step.

Example:
    >>> import lightning.pytorch as L
    >>> from lightning_spiral import DistillationCallback, KDLoss
    >>> callback = DistillationCallback(teacher, loss=KDLoss(temperature=4.0, alpha=1.0), weight=0.5)  # doctest: +SKIP
    >>> L.Trainer(callbacks=[callback]).fit(lit_model, datamodule)  # lit_model unchanged  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as L
import torch
import torch.nn as nn

from lightning_spiral.distill.base import DistillationLoss
from lightning_spiral.distill.kd import KDLoss
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.module_network import network_of

BatchPart = Callable[[Any], Any]
LOG_NAME = "train/loss/distill"


def batch_inputs(batch: Any) -> torch.Tensor:
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


def add_to_loss(output: Any, term: torch.Tensor) -> Any:
    """``output`` of a ``training_step`` (a loss tensor, a dict with ``"loss"``, or ``None``) plus ``term``."""
    if output is None:  # the user skipped this batch
        return None
    if isinstance(output, torch.Tensor):
        return output + term
    if isinstance(output, Mapping) and "loss" in output:
        return {**output, "loss": output["loss"] + term}
    raise SpiralConfigError(
        f"`training_step` returned {type(output).__name__}; DistillationCallback adds its term to a loss tensor or "
        "to the 'loss' entry of a dict. Return one of those (or None to skip the batch)."
    )


class DistillationCallback(L.Callback):
    """Add a distillation term from a frozen teacher to the loss of any LightningModule.

    Args:
        teacher: the trained network to distil from. It is frozen at ``setup`` (eval mode, no
            gradients), moved to the module's device and dtype when fit starts, and never saved in
            the module's checkpoint.
        loss: a logit loss called as ``loss(student_logits, teacher_logits, target)``: :class:`KDLoss`,
            :class:`DKDLoss`, :class:`LogitMSELoss`. Default ``KDLoss(temperature=4.0, alpha=1.0)`` —
            the pure ``T² · KL`` term, since the user's loss already has the labels.
        weight: factor of the distillation term added to the user's loss (> 0).
        inputs: function from a batch to the network input; default ``batch[0]`` (or the batch
            itself when it is a tensor).
        targets: function from a batch to the labels given to ``loss``; default ``batch[1]``.
        attr: attribute of the LightningModule holding the student network whose output is
            distilled; ``None`` means ``student`` when the module has one, else the module itself
            (its ``forward``, as in ``self(x)``). The same rule as ``PruningCallback(attr=...)``.

    The unweighted term is logged as ``train/loss/distill`` (per epoch).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> teacher = nn.Linear(4, 3)
        >>> callback = DistillationCallback(teacher, weight=0.5)
        >>> round(callback.distillation_term(teacher(torch.ones(2, 4)), torch.ones(2, 4), torch.tensor([0, 1])).item(), 6)
        0.0
    """

    def __init__(
        self,
        teacher: nn.Module,
        loss: DistillationLoss | None = None,
        weight: float = 1.0,
        inputs: BatchPart | None = None,
        targets: BatchPart | None = None,
        attr: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(teacher, nn.Module):
            raise SpiralConfigError(f"`teacher` must be an nn.Module (the trained network), got {type(teacher).__name__}.")
        if loss is not None and not isinstance(loss, DistillationLoss):
            raise SpiralConfigError(
                f"`loss` must be a logit distillation loss taking (student_logits, teacher_logits, target) — KDLoss, "
                f"DKDLoss or LogitMSELoss — got {type(loss).__name__}. Feature losses need SpiralModule."
            )
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (weight > 0 and math.isfinite(weight)):
            raise SpiralConfigError(f"`weight` must be a finite number > 0 (typically 0.5-10), got {weight!r}.")
        for name, value in (("inputs", inputs), ("targets", targets)):
            if value is not None and not callable(value):
                raise SpiralConfigError(f"`{name}` must be None or a function of the batch, got {value!r}.")
        self.teacher = teacher
        self.loss = loss if loss is not None else KDLoss(temperature=4.0, alpha=1.0)
        self.weight = float(weight)
        self.inputs = inputs or batch_inputs
        self.targets = targets or batch_targets
        self.attr = attr
        self._network: nn.Module | None = None

    # ----------------------------------------------------------------------------- Lightning hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if not pl_module.automatic_optimization:
            raise SpiralConfigError(
                f"DistillationCallback adds its term to the loss `training_step` returns, but "
                f"{type(pl_module).__name__} uses manual optimization (`automatic_optimization` is False). "
                "Call `callback.distillation_term(...)` in your step instead."
            )
        if any(module is self.teacher for module in pl_module.modules()):
            raise SpiralConfigError(
                f"`teacher` is a submodule of {type(pl_module).__name__}: it would be trained, saved and handed to "
                "the optimizer. Keep the teacher outside the LightningModule."
            )
        self.teacher.eval()
        self.teacher.requires_grad_(False)
        user_step = pl_module.training_step
        distilled = functools.wraps(user_step)(lambda *args, **kwargs: self.distilled_step(pl_module, user_step, *args, **kwargs))
        distilled.distilled_by = self  # marks our wrappers, so `restore` removes them all
        pl_module.training_step = distilled

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # here, not in `setup`: the strategy has moved (and maybe converted) the module by now
        self._network = network_of(pl_module, self.attr)
        self.teacher.to(device=pl_module.device, dtype=pl_module.dtype)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.restore(pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.restore(pl_module)  # a failed fit skips `teardown`

    def restore(self, pl_module: L.LightningModule) -> None:
        """Give the module the ``training_step`` of its class back (removing every distillation wrapper)."""
        if hasattr(vars(pl_module).get("training_step"), "distilled_by"):
            del pl_module.training_step  # the class's method is visible again
        self._network = None

    # ------------------------------------------------------------------------ override points
    def distillation_term(self, student_logits: torch.Tensor, inputs: torch.Tensor, target: Any) -> torch.Tensor:
        """The unweighted distillation loss of one batch; the teacher runs without gradients."""
        with torch.no_grad():
            teacher_logits = self.teacher(inputs)
        return self.loss(student_logits, teacher_logits, target)

    def distilled_step(self, pl_module: L.LightningModule, user_step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run the user's step with the student's output captured, then add ``weight`` × the distillation term."""
        network = self._network
        assert network is not None, "set in on_fit_start, before any training step"
        captured: list[Any] = []
        handle = network.register_forward_hook(lambda _module, _args, output: captured.append(output))
        try:
            output = user_step(*args, **kwargs)
        finally:
            handle.remove()
        if output is None:
            return None
        if not captured or not isinstance(captured[0], torch.Tensor):
            seen = "was not called" if not captured else f"returned {type(captured[0]).__name__}"
            raise SpiralConfigError(
                f"DistillationCallback needs the student's logits, but {type(network).__name__} {seen} during "
                f"`training_step` (`attr`={self.attr!r}). Pass `attr` naming the submodule your step calls on the "
                "inputs and that returns logits, e.g. `attr='net'`."
            )
        batch = args[0] if args else kwargs["batch"]
        student_logits = captured[0]  # (N, C): the first call of the network in the step
        term = self.distillation_term(student_logits, self.inputs(batch), self.targets(batch))
        pl_module.log(LOG_NAME, term.detach(), on_step=False, on_epoch=True, batch_size=len(student_logits), sync_dist=True)
        return add_to_loss(output, self.weight * term)
