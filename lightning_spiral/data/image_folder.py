"""Your own images as a LightningDataModule: one folder per class, read by torchvision's ``ImageFolder``.

Layout: ``train_dir/<class name>/<image>`` (and optionally ``test_dir`` with the same class
folders). Images are decoded when a batch asks for them, so the folder may be larger than memory.
Splits follow the rules of every other datamodule here (:mod:`lightning_spiral.data.array_datamodule`):

* **test** — ``test_dir`` when given; otherwise ``test_fraction`` of ``train_dir`` is carved
  first, stratified by class and seeded (as :class:`~lightning_spiral.data.DigitsDataModule` does);
* **val** — carved from the remaining training images by the same seeded permutation
  (:func:`~lightning_spiral.data.array_datamodule.train_val_indices`);
* **pixels** — each image is converted to RGB (or gray), resized so its shorter side is
  ``resize`` (default: ``image_size``), centre-cropped to ``image_size`` and scaled to [0, 1];
  training images then get the random crop + flip of the array datamodules when ``augment``;
* **normalisation** — ``mean`` / ``std`` on the [0, 1] scale when given (ImageNet's for pretrained
  torchvision weights: ``(0.485, 0.456, 0.406)``, ``(0.229, 0.224, 0.225)``), else measured on the
  training part by one pass over it in :meth:`setup`.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for label in ("cat", "dog"):
    ...     (root / label).mkdir()
    ...     for i in range(10):
    ...         Image.new("RGB", (40, 30), (25 * i, 0, 0)).save(root / label / f"{i}.png")
    >>> dm = ImageFolderDataModule(root, image_size=16, batch_size=4, test_fraction=0.2)
    >>> dm.num_classes, dm.input_shape, dm.classes
    (2, (3, 16, 16), ['cat', 'dog'])
    >>> dm.setup("fit")
    >>> len(dm.train_set), len(dm.val_set), len(dm.test_set)
    (14, 2, 4)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import find_classes

from lightning_spiral.checks import check_bool, check_int, check_interval, is_integer, is_number, refuse
from lightning_spiral.data.array_datamodule import (
    random_crop_flip,
    stratified_test_split,
    subset_test_indices,
    train_val_indices,
)
from lightning_spiral.data.loaders import SplitLoaders
from lightning_spiral.errors import SpiralConfigError


class FolderSubset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Some images of an ``ImageFolder``, decoded to ``(C, H, W)`` in [0, 1], augmented and normalised when read.

    Args:
        folder: the ``ImageFolder`` (without transform: its items are PIL images).
        indices: which of its images this subset holds.
        pixels: PIL image -> ``(C, H, W)`` float tensor in [0, 1] (resize, crop, colour mode).
        mean: per-channel mean, ``(C,)``; ``None``: not normalised (used to measure it).
        std: per-channel std, ``(C,)``.
        augment: apply :func:`random_crop_flip` before normalising.
    """

    def __init__(
        self,
        folder: ImageFolder,
        indices: np.ndarray,
        pixels: transforms.Compose,
        mean: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
        augment: bool = False,
    ) -> None:
        self.folder = folder
        self.indices = [int(i) for i in indices]
        self.pixels = pixels
        self.mean = None if mean is None else mean.float().view(-1, 1, 1)  # (C, 1, 1) broadcasts over H, W
        self.std = None if std is None else std.float().view(-1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.folder[self.indices[index]]
        tensor = self.pixels(image)  # (C, H, W) in [0, 1]
        if self.augment:
            tensor = random_crop_flip(tensor)
        if self.mean is not None:
            tensor = (tensor - self.mean) / self.std
        return tensor, torch.tensor(label)


class ImageFolderDataModule(SplitLoaders, LightningDataModule):
    """Train / val / test batches from folders of images, one sub-folder per class.

    Args:
        train_dir: the training images, ``train_dir/<class>/<image>``.
        test_dir: the test images with the same class folders; ``None`` carves ``test_fraction``
            of ``train_dir`` instead.
        image_size: side of the square crop the model sees (an int), or ``(height, width)``.
        resize: shorter side after resizing, before the centre crop (``None``: ``image_size``,
            i.e. the largest centre crop; e.g. 256 with ``image_size=224`` for the ImageNet recipe).
        grayscale: one channel instead of RGB.
        mean: per-channel mean on the [0, 1] scale; ``None`` measures it on the training part.
        std: per-channel std on the [0, 1] scale; given together with ``mean``.
        batch_size: samples per batch.
        val_fraction: share of the (non-test) training images held out for validation.
        test_fraction: share of ``train_dir`` held out as the test split when there is no ``test_dir``.
        seed: seed of the splits and the subsets.
        augment: random crop (padding 4) + horizontal flip of training images.
        num_workers: DataLoader worker processes (decoding happens there).
        train_subset: keep only this many training images (a seeded random choice), for fast runs.
        test_subset: keep only this many test images, for fast runs.

    Example:
        See the module docstring.
    """

    def __init__(
        self,
        train_dir: str | os.PathLike,
        test_dir: str | os.PathLike | None = None,
        *,
        image_size: int | Sequence[int] = 32,
        resize: int | None = None,
        grayscale: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        augment: bool = False,
        num_workers: int = 0,
        train_subset: int | None = None,
        test_subset: int | None = None,
    ) -> None:
        super().__init__()
        self.image_size = _check_size(image_size)
        self.resize = check_int("resize", resize, 1, none_ok=True)
        self.grayscale = check_bool("grayscale", grayscale)
        channels = 1 if self.grayscale else 3
        self.mean, self.std = _check_mean_std(mean, std, channels)
        self._check_split_arguments(
            batch_size=batch_size,
            val_fraction=val_fraction,
            seed=seed,
            augment=augment,
            num_workers=num_workers,
            train_subset=train_subset,
            test_subset=test_subset,
        )
        self.test_fraction = check_interval("test_fraction", test_fraction, "(0, 1)")
        self.train_dir = _check_path("train_dir", train_dir)
        self.test_dir = None if test_dir is None else _check_path("test_dir", test_dir)
        self.classes = self._classes("train_dir", self.train_dir)
        if self.test_dir is not None and (test_classes := self._classes("test_dir", self.test_dir)) != self.classes:
            raise SpiralConfigError(
                f"`test_dir` '{self.test_dir}' must have the class folders of `train_dir` {self.classes}, got {test_classes}."
            )
        self.num_classes = len(self.classes)
        self.input_shape = (channels, *self.image_size)
        self.train_set: FolderSubset | None = None
        self.val_set: FolderSubset | None = None
        self.test_set: FolderSubset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Scan the folders, split train / val / test, measure the normalisation if not given."""
        if self.train_set is not None:
            return
        folder = self._scan("train_dir", self.train_dir)
        labels = np.asarray(folder.targets)
        if self.test_dir is None:
            rest, test = stratified_test_split(labels, self.test_fraction, self.seed)
            test_folder, test = folder, test[subset_test_indices(len(test), self.seed, self.test_subset)]
        else:
            rest, test_folder = np.arange(len(labels)), self._scan("test_dir", self.test_dir)
            test = subset_test_indices(len(test_folder), self.seed, self.test_subset)
        train_part, val_part = train_val_indices(len(rest), self.val_fraction, self.seed, self.train_subset)
        train, val = rest[train_part], rest[val_part]
        pixels = self._pixels()
        if self.mean is None:
            self.mean, self.std = self._measure_mean_std(FolderSubset(folder, train, pixels))
        stats = torch.tensor(self.mean), torch.tensor(self.std)
        self.train_set = FolderSubset(folder, train, pixels, *stats, augment=self.augment)
        self.val_set = FolderSubset(folder, val, pixels, *stats)
        self.test_set = FolderSubset(test_folder, test, pixels, *stats)

    def _pixels(self) -> transforms.Compose:
        """PIL image -> ``(C, H, W)`` in [0, 1]: colour mode, resize of the shorter side, centre crop."""
        steps = [transforms.Grayscale(1)] if self.grayscale else []
        return transforms.Compose([
            *steps,
            transforms.Resize(self.resize or min(self.image_size)),
            transforms.CenterCrop(self.image_size),
            transforms.ToTensor(),
        ])  # fmt: skip

    def _measure_mean_std(self, dataset: FolderSubset) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the (un-augmented) training part, summed in float64 batch by batch."""
        total = torch.zeros(self.input_shape[0], dtype=torch.float64)
        total_squares = torch.zeros_like(total)
        count = 0
        for images, _ in DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers):
            pixels = images.double().transpose(0, 1).flatten(1)  # (C, B * H * W)
            total += pixels.sum(dim=1)
            total_squares += pixels.square().sum(dim=1)
            count += pixels.shape[1]
        mean = total / count
        std = (total_squares / count - mean.square()).clamp_min(0).sqrt()
        std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel is only centred
        return tuple(mean.tolist()), tuple(std.tolist())

    @staticmethod
    def _classes(name: str, root: Path) -> list[str]:
        """The class folder names of ``root`` (sorted), checked to be at least two."""
        if not root.is_dir():
            raise SpiralConfigError(f"`{name}` must be an existing folder with one sub-folder per class, got '{root}' (not found).")
        try:
            classes, _ = find_classes(str(root))
        except FileNotFoundError:
            classes = []
        if len(classes) < 2:
            raise SpiralConfigError(
                f"`{name}` '{root}' must hold at least 2 class folders ({name}/<class>/<image>), got {classes}."
            )
        return classes

    @staticmethod
    def _scan(name: str, root: Path) -> ImageFolder:
        try:
            return ImageFolder(str(root))
        except FileNotFoundError as err:  # a class folder without a readable image file
            raise SpiralConfigError(f"`{name}` '{root}': {err}") from err


def _check_path(name: str, path: object) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a ``str`` or ``os.PathLike`` (existence is checked by the caller)."""
    if not isinstance(path, (str, os.PathLike)):
        raise refuse(name, path, "a folder path (str or os.PathLike)")
    return Path(path)


def _check_size(image_size: object) -> tuple[int, int]:
    """``32`` -> ``(32, 32)``; ``(h, w)`` kept; anything else raises naming ``image_size``."""
    size = [image_size] * 2 if is_integer(image_size) else image_size
    if not (isinstance(size, Sequence) and len(size) == 2 and all(is_integer(side) and side >= 1 for side in size)):
        raise refuse("image_size", image_size, "an integer >= 1 or a pair (height, width) of them")
    return int(size[0]), int(size[1])


def _numbers(values: object, count: int, positive: bool) -> tuple[float, ...] | None:
    """``values`` as ``count`` finite floats (each > 0 when ``positive``), or ``None`` when it is not that."""
    if isinstance(values, str) or not isinstance(values, Sequence) or len(values) != count:
        return None
    if not all(is_number(v) and math.isfinite(v) and (v > 0 or not positive) for v in values):
        return None
    return tuple(float(v) for v in values)


def _check_mean_std(
    mean: object, std: object, channels: int
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """Both ``None``, or both ``channels`` finite numbers with every std > 0."""
    if mean is None and std is None:
        return None, None
    checked_mean, checked_std = _numbers(mean, channels, positive=False), _numbers(std, channels, positive=True)
    if checked_mean is None or checked_std is None:
        raise SpiralConfigError(
            f"`mean` and `std` must both be None (measured on the training part) or both hold {channels} numbers "
            f"(std > 0) on the [0, 1] scale, got mean={mean!r} and std={std!r}."
        )
    return checked_mean, checked_std
