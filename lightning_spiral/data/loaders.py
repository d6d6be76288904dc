"""The three dataloaders every DataModule of this package serves, built the same way.

A DataModule that mixes :class:`SplitLoaders` in sets ``train_set``, ``val_set`` and ``test_set``
in ``setup`` and has ``batch_size`` and ``num_workers`` attributes.

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

from lightning_spiral.errors import SpiralError


class SplitLoaders:
    """Shuffled training batches; validation and test batches in order."""

    train_set: Dataset[Any] | None = None
    val_set: Dataset[Any] | None = None
    test_set: Dataset[Any] | None = None
    batch_size: int
    num_workers: int

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
