"""Checks of loaded image arrays: the data a run would train on, refused in one line before training.

Argument checks live in :mod:`lightning_spiral.checks`; these are the rules of the *data*: images
numeric, finite and 4-D, one integer label per image in ``[0, num_classes)``, train and test
samples of one size. Each check raises :class:`~lightning_spiral.errors.SpiralConfigError` naming
the array (``x_train``, ``y_test``...), where it came from (``where``: ``" in '<file>'"`` or
``""``), what it holds and what is allowed. Called when arrays are loaded: by the ``.npz``
constructor on the labels and the array headers, by :meth:`ArrayDataModule.setup` on everything.

Example:
    >>> import numpy as np
    >>> check_labels("y_train", np.array([0, 1, 2]), num_classes=3)
    >>> check_labels("y_train", np.array(["cat", "dog"]), num_classes=2, where=" in 'pets.npz'")
    Traceback (most recent call last):
      ...
    lightning_spiral.errors.SpiralConfigError: `y_train` in 'pets.npz' must hold integer class labels (an integer dtype, or floats with whole values), got dtype <U3.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lightning_spiral.errors import SpiralConfigError

SPLITS = ("train", "test")
LABELS_ALLOWED = "integer class labels (an integer dtype, or floats with whole values)"
PIXELS_ALLOWED = "numeric pixels (an integer or float dtype, e.g. uint8 0-255 or float32)"


def fail(key: str, where: str, allowed: str, got: str) -> SpiralConfigError:
    """The one-line refusal of loaded data: "`key`<where> must <allowed>, got <got>."."""
    return SpiralConfigError(f"`{key}`{where} must {allowed}, got {got}.")


def check_ndarray(key: str, value: object, where: str = "") -> np.ndarray:
    """``value`` itself if it is a numpy array (what :class:`ImageArrays` holds)."""
    if not isinstance(value, np.ndarray):
        raise fail(key, where, "be a numpy array", f"{type(value).__name__}")
    return value


def check_pixel_dtype(key: str, dtype: np.dtype, where: str = "") -> None:
    """Integer or float pixels; not strings, objects, booleans or complex numbers."""
    if dtype.kind not in "iuf":
        raise fail(key, where, f"hold {PIXELS_ALLOWED}", f"dtype {dtype}")


def check_labels(key: str, labels: np.ndarray, num_classes: int | None = None, where: str = "") -> None:
    """A 1-D array of whole numbers, each in ``[0, num_classes)`` (range unchecked when ``num_classes`` is None)."""
    if labels.ndim != 1:
        raise fail(key, where, "be a 1-D array of labels, one per image", f"shape {labels.shape}")
    if labels.dtype.kind == "f":
        fractional = labels[~np.isfinite(labels) | (labels != np.round(labels))]
        if fractional.size:
            raise fail(key, where, f"hold {LABELS_ALLOWED}",
                       f"{fractional.size} values that are not whole numbers (e.g. {fractional[0].item()!r})")
    elif labels.dtype.kind not in "iu":
        raise fail(key, where, f"hold {LABELS_ALLOWED}", f"dtype {labels.dtype}")
    if num_classes is not None and labels.size:
        outside = np.count_nonzero((labels < 0) | (labels >= num_classes))
        if outside:
            raise fail(key, where, f"hold labels in [0, {num_classes})",
                       f"{outside} outside it (values from {int(labels.min())} to {int(labels.max())})")


def check_counts(split: str, num_images: int, num_labels: int, where: str = "") -> None:
    """At least one image, and as many labels as images."""
    if num_images == 0 or num_images != num_labels:
        raise SpiralConfigError(
            f"`x_{split}` and `y_{split}`{where} must hold one label per image and at least one image, "
            f"got {num_images} images and {num_labels} labels."
        )


def check_same_size(train_shape: tuple[int, ...], test_shape: tuple[int, ...], where: str = "") -> None:
    """Train and test images of one sample shape (height, width, channels)."""
    if tuple(train_shape[1:]) != tuple(test_shape[1:]):
        raise SpiralConfigError(
            f"`x_train` and `x_test`{where} must hold images of one size, got samples of shape "
            f"{tuple(train_shape[1:])} and {tuple(test_shape[1:])}."
        )


def check_finite_pixels(key: str, images: np.ndarray, where: str = "", chunk: int = 1024) -> None:
    """No NaN or inf pixel (float images only, counted chunk by chunk to keep memory small)."""
    if images.dtype.kind != "f":
        return
    nan = inf = 0
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk]
        nan += int(np.count_nonzero(np.isnan(block)))
        inf += int(np.count_nonzero(np.isinf(block)))
    if nan or inf:
        raise fail(key, where, "hold finite pixel values", f"{nan} NaN and {inf} inf among its {images.size} values")


def check_image_arrays(
    arrays: Mapping[str, object], num_classes: int, input_shape: tuple[int, int, int], where: str = ""
) -> None:
    """All rules on ``x_train, y_train, x_test, y_test``; images ``(N, H, W, C)`` matching ``input_shape`` ``(C, H, W)``."""
    channels, height, width = input_shape
    for split in SPLITS:
        images = check_ndarray(f"x_{split}", arrays[f"x_{split}"], where)
        labels = check_ndarray(f"y_{split}", arrays[f"y_{split}"], where)
        check_pixel_dtype(f"x_{split}", images.dtype, where)
        if images.ndim != 4:
            raise fail(f"x_{split}", where, "be a 4-D image array (N, H, W, C)", f"shape {images.shape}")
        check_counts(split, len(images), len(labels), where)
        check_labels(f"y_{split}", labels, num_classes, where)
    check_same_size(arrays["x_train"].shape, arrays["x_test"].shape, where)
    if arrays["x_train"].shape[1:] != (height, width, channels):
        raise fail("x_train", where, f"hold images of shape (H, W, C) = {(height, width, channels)} to match "
                   f"`input_shape` {tuple(input_shape)}", f"{arrays['x_train'].shape[1:]}")
    for split in SPLITS:
        check_finite_pixels(f"x_{split}", arrays[f"x_{split}"], where)


__all__ = ["check_counts", "check_finite_pixels", "check_image_arrays", "check_labels", "check_ndarray",
           "check_pixel_dtype", "check_same_size"]
