"""Bad data is refused in one line before training: real .npz files, in-memory arrays, bad arguments.

Each case writes the file a user could have written (np.savez into tmp_path) and expects a
:class:`SpiralConfigError` naming the file, the array key, what it holds and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torchvision

from lightning_spiral.data import ArrayDataModule, CIFAR10DataModule, DigitsDataModule, ImageArrays, NpzDataModule
from lightning_spiral.data import ImageFolderDataModule
from lightning_spiral.errors import SpiralConfigError

RNG = np.random.default_rng(0)
LABELS = "must hold integer class labels \\(an integer dtype, or floats with whole values\\)"
PIXELS = "must hold numeric pixels \\(an integer or float dtype, e.g. uint8 0-255 or float32\\)"


def good_arrays(n_train: int = 40, n_test: int = 20, shape: tuple[int, ...] = (8, 8, 3)) -> dict[str, np.ndarray]:
    """Four consistent arrays: random uint8 images, labels 0..3."""
    return {
        "x_train": RNG.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % 4,
        "x_test": RNG.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % 4,
    }


def save(path: Path, **overrides: np.ndarray) -> Path:
    np.savez(path, **(good_arrays() | overrides))
    return path


def with_bad_pixels(value: float, count: int) -> np.ndarray:
    images = RNG.random((40, 8, 8, 3)).astype(np.float32)
    images.reshape(-1)[:count] = value
    return images


def refused(call, match: str) -> str:
    """Run ``call``, expect a one-line SpiralConfigError matching ``match``; return the message."""
    with pytest.raises(SpiralConfigError, match=match) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --- .npz files: refused by the constructor (labels, headers) ------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"y_train": np.array(["cat", "dog"] * 20)}, rf"`y_train` in '.*bad.npz' {LABELS}, got dtype <U3\.$"),
        ({"y_test": np.array([b"a"] * 20)}, rf"`y_test` in '.*bad.npz' {LABELS}, got dtype \|S1\.$"),
        ({"y_train": np.arange(40) % 4 + 0.5}, rf"`y_train` in '.*' {LABELS}, got 40 values that are not whole numbers \(e\.g\. 0\.5\)\.$"),
        ({"y_train": np.where(np.arange(40) == 3, np.nan, 1.0)}, rf"`y_train` in '.*' {LABELS}, got 1 values that are not whole numbers \(e\.g\. nan\)"),
        ({"y_train": np.arange(40) % 2 == 0}, rf"`y_train` in '.*' {LABELS}, got dtype bool\.$"),
        ({"y_test": np.arange(20) % 4 - 2}, r"`y_test` in '.*' must hold labels in \[0, 4\), got 10 outside it \(values from -2 to 1\)\.$"),
        ({"classes": np.array(["a", "b", "c"])}, r"`y_train` in '.*' must hold labels in \[0, 3\), got 10 outside it \(values from 0 to 3\)\.$"),
        ({"y_train": np.zeros((40, 1), dtype=np.int64)}, r"`y_train` in '.*' must be a 1-D array of labels, one per image, got shape \(40, 1\)\.$"),
        ({"x_train": np.full((40, 8, 8, 3), "0")}, rf"`x_train` in '.*bad.npz' {PIXELS}, got dtype <U1\.$"),
        ({"x_test": np.zeros((20, 8, 8, 3), dtype=complex)}, rf"`x_test` in '.*' {PIXELS}, got dtype complex128\.$"),
        ({"y_train": np.arange(39) % 4}, r"`x_train` and `y_train` in '.*' must hold one label per image and at least one image, got 40 images and 39 labels\.$"),
        ({"x_test": np.zeros((0, 8, 8, 3), np.uint8), "y_test": np.zeros(0, np.int64)}, r"`x_test` and `y_test` in '.*' must hold .* got 0 images and 0 labels"),
        ({"x_train": np.zeros((40, 64), np.uint8)}, r"`x_train` in '.*' must be images \(N, H, W, C\) or gray \(N, H, W\), got shape \(40, 64\)\.$"),
        ({"x_test": np.zeros((20, 8, 8, 3, 1), np.uint8)}, r"`x_test` in '.*' must be images .* got shape \(20, 8, 8, 3, 1\)\.$"),
        ({"x_test": np.zeros((20, 4, 4, 3), np.uint8)}, r"`x_train` and `x_test` in '.*' must hold images of one size, got samples of shape \(8, 8, 3\) and \(4, 4, 3\)\.$"),
        ({"classes": np.array("abcd")}, r"`classes` in '.*' must be a 1-D array of class names, got shape \(\)\.$"),
    ],
)
def test_bad_npz_arrays_are_refused_by_the_constructor(tmp_path: Path, overrides: dict, match: str) -> None:
    path = save(tmp_path / "bad.npz", **overrides)
    assert str(path) in refused(lambda: NpzDataModule(path), match)


@pytest.mark.parametrize(
    ("overrides", "key", "match"),
    [
        ({"y_train": np.array([1, "a"] * 20, dtype=object)}, "y_train", "be a numeric array \\(object arrays are not loaded: allow_pickle=False\\), got dtype object"),
        ({"classes": np.array(["a", None, "c", "d"], dtype=object)}, "classes", "be a numeric array .* got dtype object"),
        ({"x_train": np.array([None] * 40, dtype=object)}, "x_train", f"{PIXELS}, got dtype object"),
    ],
)
def test_pickled_object_arrays_are_refused_without_unpickling(tmp_path: Path, overrides: dict, key: str, match: str) -> None:
    path = save(tmp_path / "objects.npz", **overrides)
    message = refused(lambda: NpzDataModule(path), rf"^`{key}` in '{re.escape(str(path))}' (must )?{match}\.$")
    assert "Object arrays cannot be loaded" not in message  # numpy's own text never reaches the user


# --- .npz files: pixels refused by setup, before any batch ---------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "count", "counted"),
    [("x_train", np.nan, 3, "3 NaN and 0 inf"), ("x_test", np.inf, 2, "0 NaN and 2 inf"), ("x_train", -np.inf, 1, "0 NaN and 1 inf")],
)
def test_non_finite_pixels_are_counted_and_refused_by_setup(tmp_path: Path, key: str, value: float, count: int, counted: str) -> None:
    images = with_bad_pixels(value, count)[: 40 if key == "x_train" else 20]
    dm = NpzDataModule(save(tmp_path / "nan.npz", **{key: images}), augment=False)  # headers are fine
    refused(dm.setup, rf"^`{key}` in '.*nan.npz' must hold finite pixel values, got {counted} among its {images.size} values\.$")
    assert dm.train_set is None


def test_nan_pixels_stop_fit_before_the_first_training_step(tmp_path: Path) -> None:
    steps = []

    class Counting(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8 * 8 * 3, 4)

        def training_step(self, batch, batch_idx):
            steps.append(batch_idx)
            return torch.nn.functional.cross_entropy(self.layer(batch[0].flatten(1)), batch[1])

        def validation_step(self, batch, batch_idx):
            steps.append(("val", batch_idx))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = NpzDataModule(save(tmp_path / "nan.npz", x_train=with_bad_pixels(np.nan, 5)), augment=False)
    trainer = pl.Trainer(
        max_steps=2, default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    with pytest.raises(SpiralConfigError, match=r"`x_train` in '.*' must hold finite pixel values, got 5 NaN"):
        trainer.fit(Counting(), datamodule=dm)
    assert steps == []  # neither the sanity validation nor a training step ran


def test_a_good_file_still_loads(tmp_path: Path) -> None:
    arrays = good_arrays() | {"y_train": (np.arange(40) % 4).astype(np.float32)}  # whole floats are labels
    np.savez(tmp_path / "good.npz", **arrays)
    dm = NpzDataModule(tmp_path / "good.npz", batch_size=8, augment=False)
    assert (dm.num_classes, dm.input_shape) == (4, (3, 8, 8))
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (36, 4, 20)
    assert dm.train_set.labels.dtype == torch.int64
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 8, 8) and torch.isfinite(images).all() and set(labels.tolist()) <= {0, 1, 2, 3}


def test_a_damaged_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = save(tmp_path / "cut.npz")
    path.write_bytes(path.read_bytes()[:-200])  # truncated download
    refused(lambda: NpzDataModule(path), r"^`path` must be a readable .npz file, got '.*cut.npz' \(.+\)\.$")


# --- ImageArrays returned by an ArrayDataModule ---------------------------------------------------


class InMemory(ArrayDataModule):
    """The arrays are given to the constructor (as a user's subclass would read them)."""

    def __init__(self, arrays: dict, **kwargs) -> None:
        super().__init__(num_classes=4, input_shape=(3, 8, 8), batch_size=8, **kwargs)
        self.arrays = arrays

    def load_arrays(self) -> ImageArrays:
        return ImageArrays(**self.arrays)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"x_train": good_arrays()["x_train"].tolist()}, r"^`x_train` must be a numpy array, got list\.$"),
        ({"y_test": np.array(["a"] * 20)}, rf"^`y_test` {LABELS}, got dtype <U1\.$"),
        ({"y_train": np.arange(40) % 5}, r"^`y_train` must hold labels in \[0, 4\), got 8 outside it \(values from 0 to 4\)\.$"),
        ({"x_test": np.zeros((20, 8, 8), np.uint8)}, r"^`x_test` must be a 4-D image array \(N, H, W, C\), got shape \(20, 8, 8\)\.$"),
        ({"x_test": good_arrays(n_test=21)["x_test"]}, r"^`x_test` and `y_test` must hold one label per image .* got 21 images and 20 labels\.$"),
        ({"x_train": good_arrays(shape=(8, 8, 1))["x_train"], "x_test": good_arrays(shape=(8, 8, 1))["x_test"]},
         r"^`x_train` must hold images of shape \(H, W, C\) = \(8, 8, 3\) to match `input_shape` \(3, 8, 8\), got \(8, 8, 1\)\.$"),
        ({"x_test": with_bad_pixels(np.inf, 4)[:20]}, r"^`x_test` must hold finite pixel values, got 0 NaN and 4 inf among its 3840 values\.$"),
    ],
)
def test_bad_image_arrays_are_refused_by_setup(overrides: dict, match: str) -> None:
    dm = InMemory(good_arrays() | overrides)
    refused(dm.setup, match)
    assert dm.train_set is None


def test_good_image_arrays_load() -> None:
    dm = InMemory(good_arrays())
    dm.setup()
    assert (len(dm.train_set), len(dm.test_set)) == (36, 20)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, "`num_classes` must be an integer >= 2, got 1."),
        ({"input_shape": (3, 8)}, "`input_shape` must be (channels, height, width), three integers >= 1, got (3, 8)."),
        ({"input_shape": (3, 8, 0)}, "`input_shape` must be (channels, height, width), three integers >= 1, got (3, 8, 0)."),
    ],
)
def test_array_datamodule_checks_its_shape_arguments(kwargs: dict, message: str) -> None:
    class Never(ArrayDataModule):
        def load_arrays(self) -> ImageArrays:
            raise AssertionError("nothing is loaded by the constructor")

    refused(lambda: Never(**({"num_classes": 4, "input_shape": (3, 8, 8)} | kwargs)), f"^{re.escape(message)}$")


# --- constructor arguments: the wordings of lightning_spiral.checks, before any file is read ------

ARGUMENTS = [
    ({"val_fraction": 1.5}, "`val_fraction` must be a number in (0, 1), got 1.5."),
    ({"batch_size": 0}, "`batch_size` must be an integer >= 1, got 0."),
    ({"batch_size": True}, "`batch_size` must be an integer >= 1, got True."),
    ({"augment": "yes"}, "`augment` must be True or False, got 'yes'."),
    ({"seed": 1.0}, "`seed` must be an integer >= 0, got 1.0."),
    ({"train_subset": 1}, "`train_subset` must be an integer >= 2, got 1."),
]


@pytest.mark.parametrize(("kwargs", "message"), ARGUMENTS)
def test_digits_arguments(kwargs: dict, message: str) -> None:
    refused(lambda: DigitsDataModule(**kwargs), f"^{re.escape(message)}$")


@pytest.mark.parametrize(("kwargs", "message"), ARGUMENTS)
def test_npz_arguments_are_checked_before_the_file(tmp_path: Path, kwargs: dict, message: str) -> None:
    refused(lambda: NpzDataModule(tmp_path / "absent.npz", **kwargs), f"^{re.escape(message)}$")


@pytest.mark.parametrize(("kwargs", "message"), ARGUMENTS)
def test_image_folder_arguments_are_checked_before_the_folder(tmp_path: Path, kwargs: dict, message: str) -> None:
    refused(lambda: ImageFolderDataModule(tmp_path / "absent", **kwargs), f"^{re.escape(message)}$")


@pytest.mark.parametrize(("kwargs", "message"), ARGUMENTS)
def test_cifar10_arguments_are_checked_before_the_folder(tmp_path: Path, kwargs: dict, message: str) -> None:
    refused(lambda: CIFAR10DataModule(tmp_path, **kwargs), f"^{re.escape(message)}$")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: DigitsDataModule(test_fraction=1), "`test_fraction` must be a number in (0, 1), got 1."),
        (lambda: NpzDataModule(3), "`path` must be an .npz file path (str or os.PathLike), got 3."),
        (lambda: CIFAR10DataModule(None), "`root` must be a folder path (str or os.PathLike), got None."),
        (lambda: CIFAR10DataModule("data", download="no"), "`download` must be True or False, got 'no'."),
        (lambda: ImageFolderDataModule(["a", "b"]), "`train_dir` must be a folder path (str or os.PathLike), got ['a', 'b']."),
        (lambda: ImageFolderDataModule("x", resize=0), "`resize` must be an integer >= 1, got 0."),
        (lambda: ImageFolderDataModule("x", grayscale=1), "`grayscale` must be True or False, got 1."),
        (lambda: ImageFolderDataModule("x", image_size=True), "`image_size` must be an integer >= 1 or a pair (height, width) of them, got True."),
        (lambda: ImageFolderDataModule("x", mean="abc", std=(1, 1, 1)),
         "`mean` and `std` must both be None (measured on the training part) or both hold 3 numbers (std > 0) on the [0, 1] "
         "scale, got mean='abc' and std=(1, 1, 1)."),
        (lambda: ImageFolderDataModule("x", mean=(0, 0, 0), std=(1, "1", 1)),
         "`mean` and `std` must both be None (measured on the training part) or both hold 3 numbers (std > 0) on the [0, 1] "
         "scale, got mean=(0, 0, 0) and std=(1, '1', 1)."),
    ],
)
def test_other_arguments(call, message: str) -> None:
    refused(call, f"^{re.escape(message)}$")


def test_a_test_fraction_too_small_for_stratification_is_refused() -> None:
    dm = DigitsDataModule(test_fraction=0.001)
    refused(dm.setup, r"^`test_fraction`=0.001 of 1797 images gives 2 test images; a stratified split of 10 classes needs from 10 to 1787\.")


def test_unreadable_cifar10_batches_are_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"not a pickle")
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    dm = CIFAR10DataModule(tmp_path)
    refused(dm.setup, r"^`root` must hold a readable 'cifar-10-batches-py', got '.*' \(.+\)\. Delete the folder and pass `download=true`")
