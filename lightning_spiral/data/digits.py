"""scikit-learn's handwritten digits as a LightningDataModule: the embedded default, no download.

Data: the UCI optical recognition of handwritten digits test set as bundled with scikit-learn
(:func:`sklearn.datasets.load_digits`): 1,797 gray 8×8 images with values 0–16, 10 classes.
It has no official test split, so one is carved first (``test_fraction``, stratified by class and
seeded), then validation is carved from the rest as for every :class:`ArrayDataModule`.

Example:
    >>> dm = DigitsDataModule(batch_size=32)
    >>> dm.num_classes, dm.input_shape
    (10, (1, 8, 8))
    >>> dm.setup("fit")
    >>> len(dm.train_set), len(dm.val_set), len(dm.test_set)
    (1293, 144, 360)
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from lightning_spiral.checks import check_interval
from lightning_spiral.data.array_datamodule import ArrayDataModule, ImageArrays, stratified_test_split


class DigitsDataModule(ArrayDataModule):
    """The 8×8 digits of scikit-learn, split into train / val / test in memory.

    Args:
        batch_size: samples per batch.
        val_fraction: share of the non-test images held out for validation.
        test_fraction: share of all images held out as the test split (stratified by class).
        seed: seed of the test and validation splits.
        augment: random crop + flip; off by default (a flipped digit is another symbol).
        num_workers: DataLoader worker processes.
        train_subset: keep only this many non-test images, for fast runs.
        test_subset: keep only this many test images, for fast runs.

    Example:
        >>> DigitsDataModule(test_fraction=0.5).test_fraction
        0.5
    """

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        augment: bool = False,
        num_workers: int = 0,
        train_subset: int | None = None,
        test_subset: int | None = None,
    ) -> None:
        super().__init__(
            num_classes=10,
            input_shape=(1, 8, 8),
            batch_size=batch_size,
            val_fraction=val_fraction,
            seed=seed,
            augment=augment,
            num_workers=num_workers,
            train_subset=train_subset,
            test_subset=test_subset,
        )
        self.test_fraction = check_interval("test_fraction", test_fraction, "(0, 1)")

    def load_arrays(self) -> ImageArrays:
        """All 1,797 digits as float32 ``(N, 8, 8, 1)``, split into train and test by ``test_fraction``."""
        digits = load_digits()
        images = digits.images.astype(np.float32)[..., None]  # (1797, 8, 8, 1), values 0..16
        labels = digits.target.astype(np.int64)
        train_index, test_index = stratified_test_split(labels, self.test_fraction, self.seed)
        return ImageArrays(images[train_index], labels[train_index], images[test_index], labels[test_index])
