"""LightningDataModules of lightning-spiral: embedded digits, ``.npz`` files, CIFAR-10, image folders, SST-2 text.

:class:`SST2DataModule` gives token ids and ``vocab_size`` (:class:`WordVocab` built from the training
part). All image modules but :class:`ImageFolderDataModule` (decoded lazily, split by the same rules) share
:class:`ArrayDataModule`: ``num_classes`` and ``input_shape`` right after construction,
a seeded validation split carved from the training images, the official test split for
reported numbers only, per-channel normalisation from the training part.

Example:
    >>> from lightning_spiral.data import DigitsDataModule
    >>> DigitsDataModule().input_shape
    (1, 8, 8)
"""

from lightning_spiral.data.array_datamodule import ArrayDataModule, ImageArrayDataset, ImageArrays
from lightning_spiral.data.cifar10 import CIFAR10DataModule
from lightning_spiral.data.digits import DigitsDataModule
from lightning_spiral.data.image_folder import ImageFolderDataModule
from lightning_spiral.data.npz import NpzDataModule
from lightning_spiral.data.sst2 import SST2DataModule
from lightning_spiral.data.text_vocab import WordVocab

__all__ = [
    "ArrayDataModule",
    "CIFAR10DataModule",
    "DigitsDataModule",
    "ImageArrayDataset",
    "ImageArrays",
    "ImageFolderDataModule",
    "NpzDataModule",
    "SST2DataModule",
    "WordVocab",
]
