"""Tests of the DataModules: digits, synthetic .npz files, a tiny local CIFAR-10 folder, the shared npz."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision
from sklearn.datasets import load_digits
from torch.utils.data import RandomSampler, SequentialSampler

from lightning_spiral.data import CIFAR10DataModule, DigitsDataModule, NpzDataModule
from lightning_spiral.data.array_datamodule import ImageArrayDataset
from lightning_spiral.errors import SpiralConfigError, SpiralError

SHARED_NPZ = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10_subset.npz"


def image_counter(*datasets: ImageArrayDataset) -> Counter:
    """Multiset of raw images (as bytes) over ``datasets``, to compare splits with their source."""
    return Counter(image.numpy().tobytes() for dataset in datasets for image in dataset.images)


@pytest.fixture(scope="module")
def digits() -> DigitsDataModule:
    dm = DigitsDataModule(batch_size=32)
    dm.setup("fit")
    return dm


# --- digits -------------------------------------------------------------------------------------


def test_digits_shapes_before_and_after_setup(digits: DigitsDataModule) -> None:
    assert (DigitsDataModule().num_classes, DigitsDataModule().input_shape) == (10, (1, 8, 8))
    images, labels = next(iter(digits.train_dataloader()))
    assert images.shape == (32, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (32,) and labels.dtype == torch.int64


def test_digits_splits_partition_the_data_set(digits: DigitsDataModule) -> None:
    assert (len(digits.train_set), len(digits.val_set), len(digits.test_set)) == (1293, 144, 360)
    all_digits = load_digits().images.astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    assert image_counter(digits.train_set, digits.val_set, digits.test_set) == Counter(
        image.tobytes() for image in all_digits
    )
    # Stratified test split: 360 images, 36 ± 1 per class.
    assert all(35 <= count <= 37 for count in Counter(digits.test_set.labels.tolist()).values())


def test_digits_splits_are_deterministic_given_the_seed(digits: DigitsDataModule) -> None:
    same, other = DigitsDataModule(seed=0), DigitsDataModule(seed=1)
    same.setup(), other.setup()
    for split in ("train_set", "val_set", "test_set"):
        assert torch.equal(getattr(same, split).images, getattr(digits, split).images)
        assert not torch.equal(getattr(other, split).images, getattr(digits, split).images)


def test_digits_normalisation_uses_the_training_part(digits: DigitsDataModule) -> None:
    raw = digits.train_set.images  # (N, 1, 8, 8), values 0..16
    assert digits.mean[0] == pytest.approx(raw.mean().item(), rel=1e-5)
    assert digits.std[0] == pytest.approx(raw.std(unbiased=False).item(), rel=1e-5)
    normalised = torch.stack([digits.train_set[i][0] for i in range(len(digits.train_set))])
    assert normalised.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert normalised.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)


def test_only_the_train_loader_shuffles(digits: DigitsDataModule) -> None:
    assert isinstance(digits.train_dataloader().sampler, RandomSampler)
    assert isinstance(digits.val_dataloader().sampler, SequentialSampler)
    assert isinstance(digits.test_dataloader().sampler, SequentialSampler)


def test_dataloader_before_setup_is_an_error() -> None:
    with pytest.raises(SpiralError, match=r"call `setup\(\)` before asking for a dataloader"):
        DigitsDataModule().train_dataloader()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val_fraction": 0}, r"`val_fraction` must be a number in \(0, 1\), got 0\."),
        ({"val_fraction": 1.0}, r"`val_fraction` must be a number in \(0, 1\), got 1\.0"),
        ({"test_fraction": -0.2}, r"`test_fraction` must be a number in \(0, 1\), got -0\.2"),
        ({"batch_size": 0}, r"`batch_size` must be an integer >= 1, got 0"),
        ({"batch_size": 8.0}, r"`batch_size` must be an integer >= 1, got 8\.0"),
        ({"seed": -1}, r"`seed` must be an integer >= 0, got -1"),
        ({"num_workers": -1}, r"`num_workers` must be an integer >= 0, got -1"),
        ({"augment": "yes"}, r"`augment` must be True or False, got 'yes'"),
        ({"train_subset": 1}, r"`train_subset` must be an integer >= 2, got 1"),
        ({"test_subset": 0}, r"`test_subset` must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_raise_in_the_constructor(kwargs: dict, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        DigitsDataModule(**kwargs)


class TinyClassifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return nn.functional.cross_entropy(self.net(images), labels)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", nn.functional.cross_entropy(self.net(batch[0]), batch[1]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_digits_runs_in_a_real_trainer() -> None:
    trainer = pl.Trainer(fast_dev_run=2, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(TinyClassifier(), datamodule=DigitsDataModule(batch_size=16))
    assert trainer.state.finished


# --- npz ----------------------------------------------------------------------------------------


def write_npz(path: Path, image_shape: tuple[int, ...] = (32, 32, 3), n_train: int = 40, n_test: int = 20, **arrays) -> Path:
    """A synthetic .npz with random uint8 images and 4 classes; ``arrays`` override or add keys (None drops one)."""
    rng = np.random.default_rng(0)
    content = {
        "x_train": rng.integers(0, 256, (n_train, *image_shape), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.int64) % 4,
        "x_test": rng.integers(0, 256, (n_test, *image_shape), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.int64) % 4,
    } | arrays
    np.savez(path, **{key: value for key, value in content.items() if value is not None})
    return path


def test_npz_shapes_splits_and_batches(tmp_path: Path) -> None:
    dm = NpzDataModule(write_npz(tmp_path / "d.npz"), batch_size=8, val_fraction=0.25)
    assert (dm.num_classes, dm.input_shape) == (4, (3, 32, 32))
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (30, 10, 20)
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (8, 3, 32, 32) and labels.shape == (8,)
    with np.load(tmp_path / "d.npz") as npz:
        x_train = npz["x_train"].transpose(0, 3, 1, 2)  # NCHW, as the datasets store images
        x_test = npz["x_test"].transpose(0, 3, 1, 2)
    assert image_counter(dm.train_set, dm.val_set) == Counter(image.tobytes() for image in x_train)
    assert torch.equal(dm.test_set.images, torch.from_numpy(x_test))  # test split untouched, in order


def test_npz_gray_images_and_class_names(tmp_path: Path) -> None:
    names = np.array(["a", "b", "c", "d", "e"])
    dm = NpzDataModule(write_npz(tmp_path / "gray.npz", image_shape=(8, 8), classes=names), augment=False, batch_size=4)
    assert (dm.num_classes, dm.input_shape) == (5, (1, 8, 8))  # num_classes from `classes`, not the labels
    dm.setup()
    assert next(iter(dm.test_dataloader()))[0].shape == (4, 1, 8, 8)


def test_npz_augmentation_keeps_shapes_and_only_touches_training(tmp_path: Path) -> None:
    dm = NpzDataModule(write_npz(tmp_path / "d.npz"), augment=True)
    dm.setup()
    torch.manual_seed(0)
    train_reads = [dm.train_set[0][0] for _ in range(8)]
    assert all(image.shape == (3, 32, 32) for image in train_reads)
    assert any(not torch.equal(train_reads[0], image) for image in train_reads[1:])
    assert torch.equal(dm.val_set[0][0], dm.val_set[0][0]) and torch.equal(dm.test_set[0][0], dm.test_set[0][0])


def test_npz_subsets(tmp_path: Path) -> None:
    dm = NpzDataModule(write_npz(tmp_path / "d.npz"), train_subset=20, test_subset=6, val_fraction=0.5)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (10, 10, 6)


def test_npz_subset_larger_than_the_data_is_an_error(tmp_path: Path) -> None:
    dm = NpzDataModule(write_npz(tmp_path / "d.npz"), train_subset=41)
    with pytest.raises(SpiralConfigError, match=r"`train_subset` must be at most 40 \(the training images\), got 41"):
        dm.setup()


def test_npz_missing_keys_are_named(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", x_test=None, y_test=None, images=np.zeros(3))
    expected = r"\['x_train', 'y_train', 'x_test', 'y_test'\]"
    with pytest.raises(SpiralConfigError, match=rf"missing the arrays \['x_test', 'y_test'\]; expected {expected}"):
        NpzDataModule(path)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"y_train": np.arange(39) % 4}, r"`x_train` and `y_train` in '.*' must hold one label per image .* got 40 images and 39 labels"),
        ({"y_test": np.arange(20) % 4 - 1}, r"`y_test` in '.*' must hold labels in \[0, 4\), got 5 outside it \(values from -1 to 2\)"),
        ({"classes": np.array(["a", "b"])}, r"`y_train` in '.*' must hold labels in \[0, 2\), got 20 outside it \(values from 0 to 3\)"),
        ({"y_train": np.full(40, 0.5)}, r"`y_train` in '.*' must hold integer class labels .* got 40 values that are not whole"),
        ({"x_test": np.zeros((20, 16, 16, 3), np.uint8)}, r"must hold images of one size, got samples of shape \(32, 32, 3\) and \(16, 16, 3\)"),
    ],
)
def test_npz_inconsistent_arrays_raise_in_the_constructor(tmp_path: Path, arrays: dict, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        NpzDataModule(write_npz(tmp_path / "d.npz", **arrays))


def test_npz_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SpiralConfigError, match=r"`path` must be an existing .npz file, got '.*nope.npz' \(not found\)"):
        NpzDataModule(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(SpiralConfigError, match=r"`path` must be a readable .npz file, got '.*text.npz'"):
        NpzDataModule(tmp_path / "text.npz")


@pytest.mark.data
@pytest.mark.skipif(not SHARED_NPZ.is_file(), reason=f"shared data file {SHARED_NPZ} is absent")
def test_shared_cifar10_subset() -> None:
    dm = NpzDataModule(SHARED_NPZ, batch_size=64)
    assert (dm.num_classes, dm.input_shape) == (10, (3, 32, 32))
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (9000, 1000, 10000)
    # README: train mean 125.82, 123.19, 114.00 and std 62.74, 62.23, 66.70 over all 10,000 images.
    assert dm.mean == pytest.approx((125.82, 123.19, 114.00), abs=1.0)
    assert dm.std == pytest.approx((62.74, 62.23, 66.70), abs=1.0)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (64, 3, 32, 32) and labels.max() < 10


# --- CIFAR-10 through torchvision ---------------------------------------------------------------


def write_cifar10_folder(root: Path, per_batch: int = 6) -> np.ndarray:
    """A tiny CIFAR-10 folder in torchvision's python-pickle format; returns the test images (N, 32, 32, 3)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8)  # rows are CHW-flattened
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": list(rng.integers(0, 10, per_batch))}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def test_cifar10_from_a_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test_images = write_cifar10_folder(tmp_path)
    # Our fake batches cannot match torchvision's md5 sums of the real files: skip those checks (test only).
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    dm = CIFAR10DataModule(tmp_path, batch_size=4, val_fraction=0.2)
    assert (dm.num_classes, dm.input_shape) == (10, (3, 32, 32))
    dm.prepare_data()  # download=False: nothing to do
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (24, 6, 6)
    assert torch.equal(dm.test_set.images, torch.from_numpy(test_images).permute(0, 3, 1, 2))
    assert next(iter(dm.train_dataloader()))[0].shape == (4, 3, 32, 32)


def test_cifar10_without_files_asks_for_download(tmp_path: Path) -> None:
    with pytest.raises(SpiralConfigError, match=r"`root` must be a folder holding 'cifar-10-batches-py', got '.*'.*`download=true`"):
        CIFAR10DataModule(tmp_path)
    assert CIFAR10DataModule(tmp_path, download=True).root == tmp_path  # nothing fetched before prepare_data
