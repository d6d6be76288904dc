"""Function matching: teacher and student see the same mixed image (Beyer et al. 2022, *a good teacher is patient and consistent*).

Distilling on the images the student trains on, with the teacher run on *exactly* the same
strongly augmented view, lets the student match the teacher's function between the training
images, not only on them. Here a batch's images are mixed before the training step runs:

- ``"mixup"`` (Zhang et al. 2018): ``lam * x + (1 - lam) * x[perm]``;
- ``"cutmix"`` (Yun et al. 2019): a box of ``x[perm]`` pasted into ``x``, ``lam`` the area left of ``x``;

with ``lam ~ Beta(alpha, alpha)`` and ``perm`` a random permutation of the batch. The teacher sees
the student's own (mixed) call; a loss's label term is mixed the same way,
``lam * loss(s, t, y) + (1 - lam) * loss(s, t, y[perm])`` — for ``KDLoss`` that is the teacher
term plus the usual mixup cross-entropy. Used by
:class:`~lightning_spiral.DistillationCallback` (``mixing=``) and the spiral's stages (``Spiral(mixing=...)``,
``spiral.mixing`` in the config; the built-in module only).

Example:
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> mixed = mix_batch(torch.ones(4, 3, 8, 8), "cutmix", alpha=1.0)
    >>> mixed.inputs.shape, sorted(mixed.permutation.tolist()), 0.0 <= mixed.lam <= 1.0
    (torch.Size([4, 3, 8, 8]), [0, 1, 2, 3], True)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch

from lightning_spiral.checks import check_choice, check_positive, refuse
from lightning_spiral.errors import SpiralConfigError

Mixing = Literal["mixup", "cutmix"]
MIXINGS: tuple[str, ...] = ("mixup", "cutmix")


@dataclasses.dataclass(frozen=True)
class MixedBatch:
    """Mixed inputs, the permutation whose samples were mixed in, and the weight ``lam`` of the originals."""

    inputs: torch.Tensor
    permutation: torch.Tensor  # (N,) long
    lam: float


def check_mixing(mixing: str | None, alpha: float, *, mode: str, cache_teacher: bool) -> tuple[str | None, float]:
    """``None``, ``"mixup"`` or ``"cutmix"``, and a Beta concentration ``alpha`` > 0; returned as given.

    Mixing needs the distillation loss to replace the step's loss (``mode="replace"``: a step's own
    loss would score mixed images against unmixed labels) and no teacher cache (mixed inputs never repeat).
    """
    alpha = check_positive("mixing_alpha", alpha, hint="1.0: lam uniform in [0, 1] (the paper's choice).")
    if mixing is None:
        return None, alpha
    check_choice("mixing", mixing, MIXINGS, hint="function matching: teacher and student see the same mixed image.")
    if mode != "replace" or cache_teacher:
        raise SpiralConfigError(
            f"`mixing`={mixing!r} needs `mode`='replace' and `cache_teacher`=False, got mode={mode!r}, "
            f"cache_teacher={cache_teacher!r}: a step's own loss would score mixed images against unmixed labels, "
            "and mixed inputs never repeat. Use a loss with its own label term, e.g. KDLoss(alpha=0.9), in mode='replace' "
            "(the spiral's built-in module does)."
        )
    return mixing, alpha


def check_mixable(inputs: Any) -> None:
    """Mixing blends float images ``(N, C, H, W)`` (mixup: any float batch); token ids and other inputs are refused."""
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() or inputs.dim() < 2:
        shown = f"a {inputs.dtype} tensor of shape {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise refuse("mixing", "on", "used with float input batches (images)",
                     f"The training batches' inputs are {shown}: token ids and structured inputs cannot be blended.")


def mix_batch(inputs: torch.Tensor, mixing: Mixing, alpha: float) -> MixedBatch:
    """``inputs`` (N, ...) mixed with a random permutation of itself (see the module docstring); ``inputs`` is not changed."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    permutation = torch.randperm(len(inputs), device=inputs.device)
    if mixing == "mixup":
        return MixedBatch(lam * inputs + (1.0 - lam) * inputs[permutation], permutation, lam)
    if inputs.dim() != 4:
        raise refuse("mixing", "cutmix", "used with image batches (N, C, H, W)", f"Got inputs of shape {tuple(inputs.shape)}.")
    height, width = inputs.shape[-2:]
    box_h, box_w = round(height * (1.0 - lam) ** 0.5), round(width * (1.0 - lam) ** 0.5)
    top = int(torch.randint(0, height - box_h + 1, ()))
    left = int(torch.randint(0, width - box_w + 1, ()))
    mixed = inputs.clone()
    mixed[..., top:top + box_h, left:left + box_w] = inputs[permutation][..., top:top + box_h, left:left + box_w]
    return MixedBatch(mixed, permutation, 1.0 - box_h * box_w / (height * width))  # the area actually kept


def with_inputs(batch: Any, inputs: torch.Tensor) -> Any:
    """``batch`` with its inputs (the batch itself, or its first item) replaced by ``inputs``."""
    if isinstance(batch, torch.Tensor):
        return inputs
    if isinstance(batch, list) and batch:
        return [inputs, *batch[1:]]
    if isinstance(batch, tuple) and batch:
        return (inputs, *batch[1:])
    raise refuse("mixing", "on", "used with batches that are a tensor or (inputs, labels, ...)",
                 f"Got a {type(batch).__name__} batch.")


__all__ = ["MIXINGS", "MixedBatch", "Mixing", "check_mixable", "check_mixing", "mix_batch", "with_inputs"]
