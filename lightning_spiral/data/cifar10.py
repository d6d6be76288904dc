"""CIFAR-10 through torchvision, as a LightningDataModule (with download, for users with a network).

Data: Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images" — 50,000 training
and 10,000 test 32×32 RGB images, 10 classes. :class:`torchvision.datasets.CIFAR10` reads (and,
with ``download=True``, fetches in :meth:`prepare_data`, once per node) the python-pickle
batches under ``<root>/cifar-10-batches-py``; its ``.data``/``.targets`` arrays then go through the
same split / normalisation / augmentation as every :class:`ArrayDataModule`.

Example:
    >>> CIFAR10DataModule("/no/such/folder")
    Traceback (most recent call last):
        ...
    lightning_spiral.errors.SpiralConfigError: `root` must be a folder holding 'cifar-10-batches-py', got '/no/such/folder' (no '/no/such/folder/cifar-10-batches-py'). Pass `download=true` to fetch it (needs a network).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10

from lightning_spiral.checks import check_bool, refuse
from lightning_spiral.data.array_datamodule import ArrayDataModule, ImageArrays
from lightning_spiral.errors import SpiralConfigError


class CIFAR10DataModule(ArrayDataModule):
    """CIFAR-10 from ``root``: val carved from the 50,000 training images, the official test split as test.

    Args:
        root: folder holding (or to receive) ``cifar-10-batches-py``.
        download: fetch the data set into ``root`` if it is not there yet.
        batch_size: samples per batch.
        val_fraction: share of the training images (after ``train_subset``) held out for validation.
        seed: seed of the validation split and of the subsets.
        augment: random crop (padding 4) + horizontal flip of training images.
        num_workers: DataLoader worker processes.
        train_subset: keep only this many training images (a seeded random choice), for fast runs.
        test_subset: keep only this many test images (a seeded random choice), for fast runs.

    Example:
        >>> dm = CIFAR10DataModule("data/", download=True)  # doctest: +SKIP
        >>> dm.num_classes, dm.input_shape  # doctest: +SKIP
        (10, (3, 32, 32))
    """

    def __init__(
        self,
        root: str | os.PathLike,
        download: bool = False,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        seed: int = 0,
        augment: bool = True,
        num_workers: int = 0,
        train_subset: int | None = None,
        test_subset: int | None = None,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise refuse("root", root, "a folder path (str or os.PathLike)")
        super().__init__(
            num_classes=10,
            input_shape=(3, 32, 32),
            batch_size=batch_size,
            val_fraction=val_fraction,
            seed=seed,
            augment=augment,
            num_workers=num_workers,
            train_subset=train_subset,
            test_subset=test_subset,
        )
        self.root = Path(root)
        self.download = check_bool("download", download)
        folder = self.root / CIFAR10.base_folder
        if not self.download and not folder.is_dir():
            raise SpiralConfigError(
                f"`root` must be a folder holding '{CIFAR10.base_folder}', got '{self.root}' (no '{folder}'). "
                "Pass `download=true` to fetch it (needs a network)."
            )

    def prepare_data(self) -> None:
        """Download both splits if asked (Lightning calls this on one process per node)."""
        if self.download:
            CIFAR10(self.root, train=True, download=True)
            CIFAR10(self.root, train=False, download=True)

    def load_arrays(self) -> ImageArrays:
        """torchvision's uint8 ``(N, 32, 32, 3)`` images and labels for both splits (checked by :meth:`setup`)."""
        try:
            train, test = CIFAR10(self.root, train=True), CIFAR10(self.root, train=False)
        except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            raise SpiralConfigError(
                f"`root` must hold a readable '{CIFAR10.base_folder}', got '{self.root}' ({reason}). "
                "Delete the folder and pass `download=true` to fetch it again."
            ) from error
        return ImageArrays(train.data, np.asarray(train.targets), test.data, np.asarray(test.targets))

    def _where(self) -> str:
        return f" in '{self.root / CIFAR10.base_folder}'"
