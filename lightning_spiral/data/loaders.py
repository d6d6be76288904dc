"""The three dataloaders every DataModule of this package serves, built the same way.

A DataModule that mixes :class:`SplitLoaders` in checks its batching and split arguments with
:meth:`SplitLoaders._check_split_arguments` (the wordings of :mod:`lightning_spiral.checks`) and
sets ``train_set``, ``val_set`` and ``test_set`` in ``setup``.

Example:
    >>> from lightning_spiral.data import DigitsDataModule
    >>> data = DigitsDataModule(batch_size=32)
    >>> data.setup("fit")
    >>> next(iter(data.train_dataloader()))[0].shape
    torch.Size([32, 1, 8, 8])
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader, Dataset

from lightning_spiral.checks import check_bool, check_int, check_interval
from lightning_spiral.errors import SpiralError


class SplitLoaders:
    """Shuffled training batches; validation and test batches in order."""

    train_set: Dataset[Any] | None = None
    val_set: Dataset[Any] | None = None
    test_set: Dataset[Any] | None = None
    batch_size: int
    val_fraction: float
    seed: int
    augment: bool
    num_workers: int
    train_subset: int | None
    test_subset: int | None

    def _check_split_arguments(
        self,
        *,
        batch_size: Any,
        val_fraction: Any,
        seed: Any,
        augment: Any,
        num_workers: Any,
        train_subset: Any,
        test_subset: Any,
    ) -> None:
        """Check and store the arguments every DataModule here takes; nothing is read from disk."""
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.val_fraction = check_interval("val_fraction", val_fraction, "(0, 1)")
        self.seed = check_int("seed", seed, 0)
        self.augment = check_bool("augment", augment)
        self.num_workers = check_int("num_workers", num_workers, 0)
        self.train_subset = check_int("train_subset", train_subset, 2, none_ok=True)
        self.test_subset = check_int("test_subset", test_subset, 1, none_ok=True)

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of the training part."""
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Batches of the validation part (carved from the training data), in order."""
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Batches of the test split, in order; for reported numbers only."""
        return self._loader(self.test_set, shuffle=False)

    def _loader(self, dataset: Dataset[Any] | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise SpiralError(f"{type(self).__name__} has no data yet: call `setup()` before asking for a dataloader.")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
