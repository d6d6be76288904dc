"""Image classification data from one ``.npz`` file, as a LightningDataModule.

The file holds ``x_train, y_train, x_test, y_test`` (images ``(N, H, W, C)`` or gray
``(N, H, W)``, uint8 0–255 or float; labels int) and optionally ``classes`` (one name per label).
``../shared/data/cifar10_subset.npz`` (beside the repository) — 10,000 CIFAR-10 training images and the full official
test split — is the reference example. The constructor checks the keys and reads the image
shapes and dtypes from the array headers (no pixel is decompressed) and the labels;
:meth:`setup` loads the arrays and checks the pixels (numeric, finite) before any training.
Files are read with ``allow_pickle=False``: a pickled object array is refused, never unpickled.

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
import zlib
from pathlib import Path

import numpy as np

from lightning_spiral.checks import refuse
from lightning_spiral.data.array_checks import check_counts, check_labels, check_pixel_dtype, check_same_size, fail
from lightning_spiral.data.array_datamodule import ArrayDataModule, ImageArrays
from lightning_spiral.errors import SpiralConfigError

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def stored_header(npz: np.lib.npyio.NpzFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of array ``key`` of an open ``.npz`` file, read from its ``.npy`` header only."""
    with npz.zip.open(f"{key}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran_order, dtype = read_header(handle)
    return shape, dtype


def one_line(error: BaseException) -> str:
    """The text of ``error`` on one line (numpy and zipfile messages may span several)."""
    return " ".join(str(error).split()) or type(error).__name__


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
        SpiralConfigError: an argument is invalid; the file is missing or unreadable, lacks a
            required array, holds a pickled object array, or its arrays disagree (shapes, label
            counts, labels not integer or outside ``classes``). Non-numeric images are refused
            here (from the header), NaN / inf pixels by :meth:`setup`.

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
        if not isinstance(path, (str, os.PathLike)):
            raise refuse("path", path, "an .npz file path (str or os.PathLike)")
        self.path = Path(path)
        split_arguments = {
            "batch_size": batch_size,
            "val_fraction": val_fraction,
            "seed": seed,
            "augment": augment,
            "num_workers": num_workers,
            "train_subset": train_subset,
            "test_subset": test_subset,
        }
        self._check_split_arguments(**split_arguments)  # before the file is opened
        if not self.path.is_file():
            raise SpiralConfigError(f"`path` must be an existing .npz file, got '{self.path}' (not found).")
        num_classes, input_shape = self._read_header()
        super().__init__(num_classes=num_classes, input_shape=input_shape, **split_arguments)

    def load_arrays(self) -> ImageArrays:
        """All four arrays; gray ``(N, H, W)`` images get a channel axis."""
        with self._open() as npz:
            x_train, y_train, x_test, y_test = (self._read(npz, key) for key in REQUIRED_KEYS)
        x_train, x_test = (images[..., None] if images.ndim == 3 else images for images in (x_train, x_test))
        return ImageArrays(x_train, y_train, x_test, y_test)

    def _where(self) -> str:
        return f" in '{self.path}'"

    def _open(self) -> np.lib.npyio.NpzFile:
        """The open archive (``allow_pickle=False``), checked to hold the required arrays."""
        try:
            npz = np.load(self.path, allow_pickle=False)
        except READ_ERRORS as error:
            raise self._unreadable(error) from error
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise SpiralConfigError(f"`path` must be an .npz archive (np.savez), got '{self.path}' holding one array.")
        missing = [key for key in REQUIRED_KEYS if key not in npz.files]
        if missing:
            npz.close()
            raise SpiralConfigError(
                f"`path` '{self.path}' is missing the arrays {missing}; expected {list(REQUIRED_KEYS)} "
                f"(and optionally 'classes'), found {sorted(npz.files)}."
            )
        return npz

    def _unreadable(self, error: BaseException, key: str = "") -> SpiralConfigError:
        """The refusal of a file numpy cannot read (damaged, truncated, not an archive)."""
        reason = f"`{key}`: {one_line(error)}" if key else one_line(error)
        return SpiralConfigError(f"`path` must be a readable .npz file, got '{self.path}' ({reason}).")

    def _header(self, npz: np.lib.npyio.NpzFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """:func:`stored_header`, with an unreadable header refused in one line."""
        try:
            return stored_header(npz, key)
        except READ_ERRORS as error:
            raise self._unreadable(error, key) from error

    def _read(self, npz: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
        """Array ``key``; a pickled object array is refused (never unpickled), a damaged one too."""
        _shape, dtype = self._header(npz, key)
        if dtype.hasobject:
            raise fail(key, self._where(), "be a numeric array (object arrays are not loaded: allow_pickle=False)",
                       f"dtype {dtype}")
        try:
            return npz[key]
        except READ_ERRORS as error:
            raise self._unreadable(error, key) from error

    def _read_header(self) -> tuple[int, tuple[int, int, int]]:
        """Check image headers and the labels; return ``num_classes`` and ``(C, H, W)``."""
        where = self._where()
        with self._open() as npz:
            shapes = {key: self._image_shape(npz, key) for key in ("x_train", "x_test")}
            labels = {key: self._read(npz, key) for key in ("y_train", "y_test")}
            classes = self._read(npz, "classes") if "classes" in npz.files else None
        check_same_size(shapes["x_train"], shapes["x_test"], where)
        for split in ("train", "test"):
            check_labels(f"y_{split}", labels[f"y_{split}"], where=where)
            check_counts(split, shapes[f"x_{split}"][0], len(labels[f"y_{split}"]), where)
        if classes is not None and classes.ndim != 1:
            raise fail("classes", where, "be a 1-D array of class names", f"shape {classes.shape}")
        num_classes = len(classes) if classes is not None else int(max(y.max() for y in labels.values())) + 1
        if num_classes < 2:
            raise SpiralConfigError(f"The labels in '{self.path}' must span at least 2 classes, got {num_classes}.")
        for key, values in labels.items():
            check_labels(key, values, num_classes, where)
        height, width = shapes["x_train"][1:3]
        channels = shapes["x_train"][3] if len(shapes["x_train"]) == 4 else 1
        return num_classes, (channels, height, width)

    def _image_shape(self, npz: np.lib.npyio.NpzFile, key: str) -> tuple[int, ...]:
        """Shape of images ``key`` from its header, checked to be numeric ``(N, H, W, C)`` or ``(N, H, W)``."""
        shape, dtype = self._header(npz, key)
        check_pixel_dtype(key, dtype, self._where())
        if len(shape) not in (3, 4):
            raise fail(key, self._where(), "be images (N, H, W, C) or gray (N, H, W)", f"shape {shape}")
        return shape
