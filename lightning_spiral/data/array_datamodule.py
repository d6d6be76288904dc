"""In-memory image data sets as a LightningDataModule: split, normalise, augment, batch.

Subclasses only say where the arrays come from (:meth:`ArrayDataModule.load_arrays`); this base
class does the rest the same way for every source:

* **splits** — ``val`` is carved from the official training images by a permutation seeded with
  ``seed`` (``val_fraction`` of them); ``test`` is the official test split and is meant for
  reported numbers only, never for decisions a run makes;
* **normalisation** — per-channel mean and std of the *training part* (validation excluded);
* **augmentation** (``augment=True``, training part only) — the standard CIFAR recipe of He et
  al. 2016 (https://arxiv.org/abs/1512.03385, section 4.2): random crop after zero-padding
  4 pixels per side, then a random horizontal flip, done per sample on tensors.

Example:
    >>> import numpy as np
    >>> class Noise(ArrayDataModule):
    ...     def load_arrays(self) -> ImageArrays:
    ...         rng = np.random.default_rng(0)
    ...         images = lambda n: rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    ...         return ImageArrays(images(50), np.arange(50) % 2, images(10), np.arange(10) % 2)
    >>> dm = Noise(num_classes=2, input_shape=(3, 8, 8), batch_size=16, val_fraction=0.2)
    >>> dm.setup("fit")
    >>> len(dm.train_set), len(dm.val_set), len(dm.test_set)
    (40, 10, 10)
    >>> images, labels = next(iter(dm.train_dataloader()))
    >>> images.shape, labels.shape
    (torch.Size([16, 3, 8, 8]), torch.Size([16]))
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from lightning_spiral.checks import check_int, is_integer, refuse
from lightning_spiral.data.array_checks import check_image_arrays
from lightning_spiral.data.loaders import SplitLoaders
from lightning_spiral.errors import SpiralConfigError

CROP_PADDING = 4


@dataclasses.dataclass(frozen=True)
class ImageArrays:
    """The four arrays of an image classification data set.

    Args:
        x_train: training images, ``(N, H, W, C)``, uint8 (0–255) or float.
        y_train: training labels, ``(N,)``, ints in ``[0, num_classes)``.
        x_test: official test images, ``(M, H, W, C)``.
        y_test: official test labels, ``(M,)``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def channel_mean_std(images: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of ``(N, H, W, C)`` images, summed in float64 chunk by chunk.

    Chunks keep the float64 copy small (full CIFAR-10 would need about 1 GB at once).

    Example:
        >>> mean, std = channel_mean_std(np.array([0, 2], dtype=np.uint8).reshape(2, 1, 1, 1))
        >>> mean.tolist(), std.tolist()
        ([1.0], [1.0])
    """
    total = np.zeros(images.shape[-1])
    total_squares = np.zeros(images.shape[-1])
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float64)  # (chunk, H, W, C)
        total += block.sum(axis=(0, 1, 2))
        total_squares += np.square(block).sum(axis=(0, 1, 2))
    count = images.size // images.shape[-1]
    mean = total / count
    std = np.sqrt(np.maximum(total_squares / count - np.square(mean), 0.0))
    return mean, np.where(std > 0, std, 1.0)  # a constant channel is only centred


def random_crop_flip(image: torch.Tensor, padding: int = CROP_PADDING) -> torch.Tensor:
    """Zero-pad ``padding`` pixels per side, crop back to the input size at random, flip half the time.

    Example:
        >>> random_crop_flip(torch.ones(3, 32, 32)).shape
        torch.Size([3, 32, 32])
    """
    _, height, width = image.shape
    padded = F.pad(image, (padding, padding, padding, padding))  # (C, H + 2p, W + 2p), black border
    top, left = torch.randint(0, 2 * padding + 1, (2,)).tolist()
    image = padded[:, top : top + height, left : left + width]
    return image.flip(-1) if torch.rand(()) < 0.5 else image


def train_val_indices(
    num_train: int, val_fraction: float, seed: int, train_subset: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded permutation of the training images, cut to ``train_subset``, split into train/val indices.

    Example:
        >>> train, val = train_val_indices(10, val_fraction=0.2, seed=0)
        >>> len(train), len(val), sorted([*train, *val]) == list(range(10))
        (8, 2, True)
    """
    if train_subset is not None and train_subset > num_train:
        raise SpiralConfigError(f"`train_subset` must be at most {num_train} (the training images), got {train_subset}.")
    order = np.random.default_rng(seed).permutation(num_train)[:train_subset]
    num_val = round(val_fraction * len(order))
    if not 0 < num_val < len(order):
        raise SpiralConfigError(
            f"`val_fraction`={val_fraction} of {len(order)} training images leaves an empty split; "
            "use more images or another fraction."
        )
    return order[num_val:], order[:num_val]


def stratified_test_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the non-test and the test images: ``test_fraction`` of each class, seeded.

    Example:
        >>> rest, test = stratified_test_split(np.arange(10) % 2, test_fraction=0.2, seed=0)
        >>> len(rest), len(test), sorted((np.arange(10)[test] % 2).tolist())
        (8, 2, [0, 1])
    """
    num_classes = len(np.unique(labels))
    num_test = int(np.ceil(test_fraction * len(labels)))
    if not num_classes <= num_test <= len(labels) - num_classes:
        raise SpiralConfigError(
            f"`test_fraction`={test_fraction} of {len(labels)} images gives {num_test} test images; a stratified "
            f"split of {num_classes} classes needs from {num_classes} to {len(labels) - num_classes}. "
            "Use more images or another fraction."
        )
    try:
        return train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed)
    except ValueError as error:  # a class with a single image cannot be stratified
        raise SpiralConfigError(f"`test_fraction`={test_fraction}: cannot split the images by class ({error}).") from error


def check_input_shape(input_shape: Any) -> tuple[int, int, int]:
    """``(channels, height, width)``, three integers >= 1, as a tuple."""
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or not all(is_integer(side) and side >= 1 for side in input_shape)
    ):
        raise refuse("input_shape", input_shape, "(channels, height, width), three integers >= 1")
    return tuple(input_shape)


def subset_test_indices(num_test: int, seed: int, test_subset: int | None = None) -> np.ndarray:
    """All test images, or a seeded random ``test_subset`` of them in file order."""
    if test_subset is None:
        return np.arange(num_test)
    if test_subset > num_test:
        raise SpiralConfigError(f"`test_subset` must be at most {num_test} (the test images), got {test_subset}.")
    # Files are often sorted by class, so the first N would not be a fair sample.
    return np.sort(np.random.default_rng(seed + 1).permutation(num_test)[:test_subset])


class ImageArrayDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Raw images in memory; each item is normalised (and augmented, if asked) when it is read.

    Args:
        images: ``(N, C, H, W)`` raw images (uint8 or float32), kept as they are.
        labels: ``(N,)`` int64 labels.
        mean: per-channel mean on the raw scale, ``(C,)``.
        std: per-channel std on the raw scale, ``(C,)``.
        augment: apply :func:`random_crop_flip` before normalising.

    Example:
        >>> ds = ImageArrayDataset(torch.zeros(4, 1, 8, 8), torch.arange(4), torch.ones(1), torch.ones(1))
        >>> image, label = ds[3]
        >>> image.shape, image.unique().tolist(), label.item()
        (torch.Size([1, 8, 8]), [-1.0], 3)
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, augment: bool = False
    ) -> None:
        self.images = images
        self.labels = labels
        self.mean = mean.float().view(-1, 1, 1)  # (C, 1, 1) broadcasts over H, W
        self.std = std.float().view(-1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].float()  # (C, H, W), raw scale
        if self.augment:
            image = random_crop_flip(image)
        return (image - self.mean) / self.std, self.labels[index]


def to_dataset(
    images: np.ndarray, labels: np.ndarray, mean: torch.Tensor, std: torch.Tensor, augment: bool
) -> ImageArrayDataset:
    """Wrap ``(N, H, W, C)`` images (uint8 kept, anything else as float32) in an :class:`ImageArrayDataset`."""
    if images.dtype != np.uint8:
        images = images.astype(np.float32)
    images_nchw = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    return ImageArrayDataset(images_nchw, torch.from_numpy(labels.astype(np.int64)), mean, std, augment)


class ArrayDataModule(SplitLoaders, LightningDataModule, ABC):
    """Base DataModule for image data sets that fit in memory; subclasses implement :meth:`load_arrays`.

    ``num_classes`` and ``input_shape`` are set by the constructor; ``train_set``, ``val_set``,
    ``test_set``, ``mean`` and ``std`` (raw pixel scale) by :meth:`setup`.

    Args:
        num_classes: number of classes.
        input_shape: shape of one image as the model sees it, ``(C, H, W)``.
        batch_size: samples per batch.
        val_fraction: share of the training images (after ``train_subset``) held out for validation.
        seed: seed of the validation split and of the subsets.
        augment: random crop (padding 4) + horizontal flip on training batches, meant for 32×32 images.
        num_workers: DataLoader worker processes.
        train_subset: keep only this many training images (a seeded random choice), for fast runs.
        test_subset: keep only this many test images (a seeded random choice, kept in file
            order), for fast runs; reported numbers should use the full test split.

    Example:
        See the module docstring.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int],
        *,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        seed: int = 0,
        augment: bool = False,
        num_workers: int = 0,
        train_subset: int | None = None,
        test_subset: int | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, 2)
        self.input_shape = check_input_shape(input_shape)
        self._check_split_arguments(
            batch_size=batch_size,
            val_fraction=val_fraction,
            seed=seed,
            augment=augment,
            num_workers=num_workers,
            train_subset=train_subset,
            test_subset=test_subset,
        )
        self.train_set: ImageArrayDataset | None = None
        self.val_set: ImageArrayDataset | None = None
        self.test_set: ImageArrayDataset | None = None
        self.mean: tuple[float, ...] | None = None
        self.std: tuple[float, ...] | None = None

    @abstractmethod
    def load_arrays(self) -> ImageArrays:
        """Read the data set; called once, by :meth:`setup`. Images are ``(N, H, W, C)``."""

    def setup(self, stage: str | None = None) -> None:
        """Load the arrays, split train/val, compute the normalisation and build the three datasets."""
        if self.train_set is not None:
            return
        arrays = self.load_arrays()
        self._check_arrays(arrays)
        train_index, val_index = self._train_val_indices(len(arrays.y_train))
        test_index = self._test_indices(len(arrays.y_test))
        mean, std = channel_mean_std(arrays.x_train[train_index])
        self.mean, self.std = tuple(mean.tolist()), tuple(std.tolist())
        stats = torch.from_numpy(mean), torch.from_numpy(std)
        self.train_set = to_dataset(arrays.x_train[train_index], arrays.y_train[train_index], *stats, self.augment)
        self.val_set = to_dataset(arrays.x_train[val_index], arrays.y_train[val_index], *stats, False)
        self.test_set = to_dataset(arrays.x_test[test_index], arrays.y_test[test_index], *stats, False)

    def _check_arrays(self, arrays: ImageArrays) -> None:
        """Raise one line unless the loaded arrays are numeric, finite, consistent and match the constructor."""
        if not isinstance(arrays, ImageArrays):
            raise SpiralConfigError(
                f"`{type(self).__name__}.load_arrays()` must return ImageArrays, got {type(arrays).__name__}."
            )
        check_image_arrays(vars(arrays), self.num_classes, self.input_shape, self._where())

    def _where(self) -> str:
        """Where the arrays come from, for messages: ``" in '<file>'"``, or ``""`` (in memory)."""
        return ""

    def _train_val_indices(self, num_train: int) -> tuple[np.ndarray, np.ndarray]:
        return train_val_indices(num_train, self.val_fraction, self.seed, self.train_subset)

    def _test_indices(self, num_test: int) -> np.ndarray:
        return subset_test_indices(num_test, self.seed, self.test_subset)
