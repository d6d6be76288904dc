"""Cache of the teacher's outputs, so a deterministic data pipeline pays the teacher forward once.

A frozen teacher maps the same input to the same output (logits, or whichever tensor ``outputs=``
selects), so when training inputs repeat exactly (no random augmentation) every epoch after the
first can skip the teacher. Samples are keyed by a fingerprint computed on their own device: two
fixed random projections of the flattened input in float64, which differ for any two different
images with overwhelming probability and cost one small matrix product. The
:class:`~lightning_spiral.distill.engine.Distiller` starts a new cache at every fit, i.e. every
stage: a new stage (a new teacher) starts empty.

If inputs do not repeat (random crops, flips), epochs after the first keep missing; the engine then
drops the cache with a warning rather than growing it without end.

Example:
    >>> import torch
    >>> cache = TeacherOutputCache()
    >>> x = torch.randn(4, 3, 8, 8)
    >>> cache.lookup(x) is None
    True
    >>> cache.store(x, torch.randn(4, 10))
    >>> cache.lookup(x).shape
    torch.Size([4, 10])
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn

from lightning_spiral.checks import check_int
from lightning_spiral.errors import SpiralConfigError


class TeacherOutputCache:
    """Teacher outputs by input fingerprint; counts hits and misses."""

    def __init__(self, seed: int = 0) -> None:
        self._generator_seed = check_int("seed", seed, 0)
        self._projection: torch.Tensor | None = None  # (D, 2) float64, built on first use
        self._logits: dict[tuple[float, float], torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def _keys(self, inputs: torch.Tensor) -> list[tuple[float, float]]:
        flat = inputs.detach().flatten(1).double()  # (N, D)
        if self._projection is None or self._projection.shape[0] != flat.shape[1] or self._projection.device != flat.device:
            generator = torch.Generator().manual_seed(self._generator_seed)
            self._projection = torch.randn(flat.shape[1], 2, generator=generator, dtype=torch.float64).to(flat.device)
        return [tuple(row) for row in (flat @ self._projection).tolist()]

    def lookup(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """The cached outputs of every sample of the batch, or ``None`` if any is missing."""
        keys = self._keys(inputs)
        found = [self._logits.get(key) for key in keys]
        if any(logits is None for logits in found):
            self.misses += len(keys)
            return None
        self.hits += len(keys)
        return torch.stack(found)  # (N, C) or (N, ...)

    def store(self, inputs: torch.Tensor, logits: torch.Tensor) -> None:
        """Remember the teacher's outputs ``logits`` (N, C) or (N, ...) of ``inputs``."""
        for key, row in zip(self._keys(inputs), logits.detach()):
            self._logits[key] = row

    def __len__(self) -> int:
        return len(self._logits)

    @classmethod
    def for_data(cls, datamodule: Any) -> "TeacherOutputCache":
        """A new cache, refused when the datamodule's ``augment`` is on (inputs would never repeat)."""
        if getattr(datamodule, "augment", False):
            raise SpiralConfigError(
                "`cache_teacher`=True needs the same inputs every epoch, but the datamodule's `augment` is True "
                "(random crops and flips). Set `augment=False` or `cache_teacher=False`."
            )
        return cls()

    def keep_after_epoch(self, epoch: int) -> bool:
        """At the end of ``epoch``: whether the cache is worth keeping (inputs repeat); counters reset."""
        if epoch >= 1 and self.misses:
            rank_zero_warn(
                f"Teacher outputs missed the cache in epoch {epoch} ({self.misses} samples): training inputs do not "
                "repeat (random augmentation?). The cache is dropped for this stage."
            )
            return False
        self.hits = self.misses = 0
        return True
