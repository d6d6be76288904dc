"""Image classification data from one ``.npz`` file, as a LightningDataModule.

The file holds ``x_train, y_train, x_test, y_test`` (images ``(N, H, W, C)`` or gray
``(N, H, W)``, uint8 0–255 or float; labels int) and optionally ``classes`` (one name per label).
``../shared/data/cifar10_subset.npz`` (beside the repository) — 10,000 CIFAR-10 training images and the full official
test split — is the reference example. The constructor checks the keys and reads the image
shapes from the array headers (no pixel is decompressed); :meth:`setup` loads the arrays.

Example:
    >>> import tempfile, numpy as np
    >>> path = tempfile.mkdtemp() + "/tiny.npz"
    >>> images = np.zeros((20, 32, 32, 3), dtype=np.uint8)
    >>> np.savez(path, x_train=images, y_train=np.arange(20) % 4, x_test=images, y_test=np.arange(20) % 4)
    >>> dm = NpzDataModule(path, batch_size=8)
    >>> dm.num_classes, dm.input_shape
    (4, (3, 32, 32))
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from lightning_spiral.data.array_datamodule import ArrayDataModule, ImageArrays, check_labels
from lightning_spiral.errors import SpiralConfigError

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


def stored_shape(npz: np.lib.npyio.NpzFile, key: str) -> tuple[int, ...]:
    """Shape of array ``key`` of an open ``.npz`` file, read from its ``.npy`` header only."""
    with npz.zip.open(f"{key}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran_order, _dtype = read_header(handle)
    return shape


class NpzDataModule(ArrayDataModule):
    """Train / val / test batches from an ``.npz`` file with ``x_train, y_train, x_test, y_test``.

    Args:
        path: the ``.npz`` file.
        batch_size: samples per batch.
        val_fraction: share of the training images (after ``train_subset``) held out for validation.
        seed: seed of the validation split and of the subsets.
        augment: random crop (padding 4) + horizontal flip of training images, for 32×32 photos.
        num_workers: DataLoader worker processes.
        train_subset: keep only this many training images (a seeded random choice), for fast runs.
        test_subset: keep only this many test images (a seeded random choice), for fast runs.

    Raises:
        SpiralConfigError: the file is missing or unreadable, lacks a required array, or its
            arrays disagree (shapes, label counts, labels outside ``classes``).

    Example:
        >>> NpzDataModule("/no/such.npz")
        Traceback (most recent call last):
            ...
        lightning_spiral.errors.SpiralConfigError: `path` must be an existing .npz file, got '/no/such.npz' (not found).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        seed: int = 0,
        augment: bool = True,
        num_workers: int = 0,
        train_subset: int | None = None,
        test_subset: int | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SpiralConfigError(f"`path` must be an existing .npz file, got '{self.path}' (not found).")
        num_classes, input_shape = self._read_header()
        super().__init__(
            num_classes=num_classes,
            input_shape=input_shape,
            batch_size=batch_size,
            val_fraction=val_fraction,
            seed=seed,
            augment=augment,
            num_workers=num_workers,
            train_subset=train_subset,
            test_subset=test_subset,
        )

    def _read_header(self) -> tuple[int, tuple[int, int, int]]:
        """Check keys, image shapes and labels; return ``num_classes`` and ``(C, H, W)``."""
        try:
            npz = np.load(self.path)
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise SpiralConfigError(f"`path` must be a readable .npz file, got '{self.path}' ({error}).") from error
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise SpiralConfigError(f"`path` must be an .npz archive (np.savez), got '{self.path}' holding one array.")
        with npz:
            missing = [key for key in REQUIRED_KEYS if key not in npz.files]
            if missing:
                raise SpiralConfigError(
                    f"`path` '{self.path}' is missing the arrays {missing}; expected {list(REQUIRED_KEYS)} "
                    f"(and optionally 'classes'), found {sorted(npz.files)}."
                )
            train_shape, test_shape = stored_shape(npz, "x_train"), stored_shape(npz, "x_test")
            y_train, y_test = npz["y_train"], npz["y_test"]
            classes = npz["classes"] if "classes" in npz.files else None
        if len(train_shape) not in (3, 4) or train_shape[1:] != test_shape[1:]:
            raise SpiralConfigError(
                f"`x_train` and `x_test` in '{self.path}' must be images (N, H, W, C) or (N, H, W) of one size, "
                f"got {train_shape} and {test_shape}."
            )
        for key, labels, num_images in (("y_train", y_train, train_shape[0]), ("y_test", y_test, test_shape[0])):
            if labels.shape != (num_images,) or num_images == 0:
                raise SpiralConfigError(
                    f"`{key}` in '{self.path}' must hold one label per image, shape ({num_images},) with at least "
                    f"one image, got {labels.shape}."
                )
        num_classes = len(classes) if classes is not None else int(max(y_train.max(), y_test.max())) + 1
        if num_classes < 2:
            raise SpiralConfigError(f"The labels in '{self.path}' must span at least 2 classes, got {num_classes}.")
        check_labels("y_train", y_train, num_classes)
        check_labels("y_test", y_test, num_classes)
        height, width = train_shape[1:3]
        channels = train_shape[3] if len(train_shape) == 4 else 1
        return num_classes, (channels, height, width)

    def load_arrays(self) -> ImageArrays:
        """All four arrays; gray ``(N, H, W)`` images get a channel axis."""
        with np.load(self.path) as npz:
            x_train, x_test = npz["x_train"], npz["x_test"]
            if x_train.ndim == 3:
                x_train, x_test = x_train[..., None], x_test[..., None]
            return ImageArrays(x_train, npz["y_train"], x_test, npz["y_test"])
