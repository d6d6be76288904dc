"""ImageFolderDataModule on real images written into tmp_path: digits (always), CIFAR-10 (shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from PIL import Image
from sklearn.datasets import load_digits

from conftest import SHARED_DATA, quiet_trainer
from lightning_spiral import SpiralModule
from lightning_spiral.data import ImageFolderDataModule
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models import build_model

CIFAR = SHARED_DATA / "cifar10_subset.npz"


def _write_folder(root: Path, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> Path:
    for index, (image, label) in enumerate(zip(images, labels)):
        (root / classes[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / classes[label] / f"{index:05d}.png")
    return root


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """The 1,797 scikit-learn digits as 8x8 gray PNGs (0-16 scaled to 0-240), one folder per digit."""
    digits = load_digits()
    images = (digits.images * 15).astype(np.uint8)  # (1797, 8, 8)
    root = _write_folder(tmp_path_factory.mktemp("digits"), images, digits.target, [f"digit_{d}" for d in range(10)])
    return root, images, digits.target


def test_splits_are_disjoint_stratified_and_seeded(digits_folder) -> None:
    root, _, labels = digits_folder
    dm = ImageFolderDataModule(root, image_size=8, grayscale=True, batch_size=64, seed=3)
    assert (dm.num_classes, dm.input_shape) == (10, (1, 8, 8))
    dm.setup("fit")
    sizes = len(dm.train_set), len(dm.val_set), len(dm.test_set)
    assert sizes == (1293, 144, 360)  # as DigitsDataModule splits the same 1,797 images
    parts = [set(dm.train_set.indices), set(dm.val_set.indices), set(dm.test_set.indices)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    test_counts = np.bincount([dm.test_set.folder.targets[i] for i in dm.test_set.indices], minlength=10)
    assert test_counts.min() >= 34 and test_counts.max() <= 38  # stratified: ~36 per class
    again = ImageFolderDataModule(root, image_size=8, grayscale=True, seed=3)
    again.setup("fit")
    assert again.val_set.indices == dm.val_set.indices


def test_pixels_are_the_image_normalised_by_the_training_statistics(digits_folder) -> None:
    root, _, _ = digits_folder
    dm = ImageFolderDataModule(root, image_size=8, grayscale=True)
    dm.setup("fit")
    folder_index = dm.val_set.indices[0]
    raw = torch.from_numpy(np.array(Image.open(dm.val_set.folder.samples[folder_index][0]))).float() / 255
    image, label = dm.val_set[0]
    assert label.item() == dm.val_set.folder.targets[folder_index]
    torch.testing.assert_close(image[0], (raw - dm.mean[0]) / dm.std[0], atol=1e-5, rtol=0)
    train = torch.stack([dm.train_set[i][0] for i in range(len(dm.train_set))])
    assert abs(train.mean().item()) < 1e-3 and abs(train.std().item() - 1) < 1e-2


def test_resize_crop_and_rgb_shape_the_batches(digits_folder) -> None:
    root, _, _ = digits_folder
    dm = ImageFolderDataModule(root, image_size=(12, 10), resize=16, mean=[0.5] * 3, std=[0.25] * 3, batch_size=8,
                               augment=True, train_subset=100)  # fmt: skip
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 12, 10) and labels.dtype == torch.int64
    assert len(dm.train_set) + len(dm.val_set) == 100 and dm.train_set.augment and not dm.val_set.augment


def test_a_separate_test_folder_is_the_test_split(digits_folder, tmp_path) -> None:
    root, images, labels = digits_folder
    classes = [f"digit_{d}" for d in range(10)]
    test_root = _write_folder(tmp_path / "test", images[:50], labels[:50], classes)
    dm = ImageFolderDataModule(root, test_root, image_size=8, grayscale=True)
    dm.setup("test")
    assert len(dm.test_set) == 50 and len(dm.train_set) + len(dm.val_set) == len(labels)
    wrong = _write_folder(tmp_path / "wrong", images[:4], np.array([0, 1, 0, 1]), ["a", "b"])
    with pytest.raises(SpiralConfigError, match=r"`test_dir` '.*wrong' must have the class folders of `train_dir` \['digit_0'"):
        ImageFolderDataModule(root, wrong)


@pytest.mark.slow  # decodes ~6,000 PNGs
def test_config_node_builds_it_and_a_small_cnn_learns_from_it(digits_folder) -> None:
    root, _, _ = digits_folder
    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["data=image_folder", f"data.train_dir={root}", "data.image_size=8",
                                                        "data.grayscale=true", "data.batch_size=64"])  # fmt: skip
    dm = instantiate(cfg.data)
    assert isinstance(dm, ImageFolderDataModule) and dm.input_shape == (1, 8, 8)
    module = SpiralModule(build_model("small_cnn", num_classes=10, input_shape=dm.input_shape), num_classes=10)
    trainer = quiet_trainer(max_epochs=3)
    trainer.fit(module, datamodule=dm)
    assert trainer.test(module, datamodule=dm, verbose=False)[0]["test/top1"] > 0.5  # chance is 0.1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"train_dir": "nowhere"}, r"`train_dir` must be an existing folder with one sub-folder per class, got 'nowhere' \(not found\)"),
        ({"image_size": 0}, r"`image_size` must be an integer >= 1 or a pair \(height, width\) of them, got 0"),
        ({"image_size": [8, 8, 3]}, r"`image_size` must be an integer >= 1 or a pair"),
        ({"mean": [0.5, 0.5, 0.5]}, r"`mean` and `std` must both be None .* or both hold 3 numbers"),
        ({"mean": [0.5], "std": [0.2], "grayscale": False}, r"both hold 3 numbers \(std > 0\) on the \[0, 1\] scale, got mean=\[0.5\]"),
        ({"val_fraction": 1.0}, r"`val_fraction` must be a number in \(0, 1\), got 1.0"),
    ],
)
def test_bad_arguments_are_refused_before_any_image_is_read(digits_folder, kwargs, match) -> None:
    root, _, _ = digits_folder
    with pytest.raises(SpiralConfigError, match=match):
        ImageFolderDataModule(**{"train_dir": root, **kwargs})


def test_a_folder_with_one_class_is_refused(tmp_path) -> None:
    _write_folder(tmp_path, np.zeros((3, 8, 8), dtype=np.uint8), np.zeros(3, dtype=int), ["only"])
    with pytest.raises(SpiralConfigError, match=r"`train_dir` '.*' must hold at least 2 class folders .* got \['only'\]"):
        ImageFolderDataModule(tmp_path)


@pytest.mark.data
@pytest.mark.skipif(not CIFAR.is_file(), reason="../shared/data/cifar10_subset.npz is absent")
def test_cifar10_photos_from_the_shared_data(tmp_path) -> None:
    with np.load(CIFAR) as npz:
        labels = npz["y_train"]
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:20] for c in range(10)]))  # the file is sorted by class
        images, labels = npz["x_train"][keep], labels[keep]
    classes = [f"class_{c}" for c in range(10)]
    root = _write_folder(tmp_path, images, labels, classes)
    dm = ImageFolderDataModule(root, image_size=32, batch_size=16, augment=True)
    dm.setup("fit")
    images_batch, _ = next(iter(dm.train_dataloader()))
    assert dm.num_classes == len(set(labels.tolist())) and images_batch.shape == (16, 3, 32, 32)
    index = dm.test_set.indices[0]
    original = torch.from_numpy(images[int(Path(dm.test_set.folder.samples[index][0]).stem)]).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor(dm.mean).view(3, 1, 1), torch.tensor(dm.std).view(3, 1, 1)
    torch.testing.assert_close(dm.test_set[0][0], (original - mean) / std, atol=1e-5, rtol=0)  # PNG is lossless
