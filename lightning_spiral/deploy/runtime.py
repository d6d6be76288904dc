"""The serving runtime of exported models: ONNX Runtime sessions on the CPU, their test top-1 and timed runs.

ONNX Runtime comes with the optional ``deploy`` extra (``pip install "lightning-spiral[deploy]"``);
:func:`require_deploy_extra` turns its absence into a :class:`~lightning_spiral.errors.SpiralConfigError`
that says how to install it, so a config asking for an export fails before any training.

Every exported graph has one input ``input`` of shape ``(batch, *input_shape)`` (float32) and one
output ``logits`` of shape ``(batch, num_classes)``.

Example:
    >>> session = onnx_session("quantized/model.onnx", threads=2)  # doctest: +SKIP
    >>> onnx_top1(session, datamodule.test_dataloader())  # doctest: +SKIP
    0.9611
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import version
from typing import Any

import torch

from lightning_spiral.checks import refuse
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.measure import check_threads

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: Packages of the ``deploy`` extra, by import name.
DEPLOY_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


def require_deploy_extra(what: str) -> None:
    """Raise unless the ``deploy`` extra (onnx, onnxscript, onnxruntime) is importable."""
    missing = [name for name in DEPLOY_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise SpiralConfigError(
            f"`{what}` needs the packages {missing}, which are not installed. "
            'Install the deploy extra: pip install "lightning-spiral[deploy]".'
        )


def check_onnx_file(name: str, path: str | os.PathLike) -> None:
    """``path`` must name an existing file (an exported ONNX graph); raises naming ``name``."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        shown = os.fspath(path) if isinstance(path, os.PathLike) else path
        raise refuse(name, shown, "an existing ONNX file", "Write one with lightning_spiral.deploy.export_onnx.")


def onnx_session(path: str | os.PathLike, threads: int = 2) -> Any:
    """An ONNX Runtime CPU session for the file at ``path``, running ops on ``threads`` threads."""
    check_threads(threads)
    check_onnx_file("path", path)
    require_deploy_extra("onnx_session")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT warns about unused initialisers of QDQ graphs
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runtime_name() -> str:
    """The serving runtime and its version, as reports name it.

    Example:
        >>> runtime_name()  # doctest: +SKIP
        'onnxruntime 1.32.0'
    """
    return f"onnxruntime {version('onnxruntime')}"


def onnx_call(session: Any, input_shape: Sequence[int], batch_size: int) -> Callable[[], Any]:
    """A zero-argument run of ``session`` on a random float32 batch made beforehand (a timing contender).

    The batch is ``(batch_size, *input_shape)``; the call is what
    :func:`lightning_spiral.timing.interleaved_calls` times beside the PyTorch models.

    Example:
        >>> call = onnx_call(onnx_session("quantized/model.onnx"), (1, 8, 8), batch_size=64)  # doctest: +SKIP
        >>> call()[0].shape  # doctest: +SKIP
        (64, 10)
    """
    feed = {INPUT_NAME: torch.randn(batch_size, *input_shape).numpy()}  # (B, *input_shape)
    return functools.partial(session.run, [OUTPUT_NAME], feed)


def onnx_top1(session: Any, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Top-1 accuracy of ``session`` over ``(images, labels)`` batches, as a fraction."""
    correct = total = 0
    for images, labels in batches:  # images: (B, C, H, W), labels: (B,)
        logits = session.run([OUTPUT_NAME], {INPUT_NAME: images.float().numpy()})[0]
        correct += int((torch.from_numpy(logits).argmax(1) == labels).sum())
        total += len(labels)
    return correct / total if total else 0.0
