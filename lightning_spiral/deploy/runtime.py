"""The serving runtime of exported models: ONNX Runtime sessions on the CPU, and their test top-1.

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

import importlib.util
import os
from collections.abc import Iterable
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


def onnx_top1(session: Any, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Top-1 accuracy of ``session`` over ``(images, labels)`` batches, as a fraction."""
    correct = total = 0
    for images, labels in batches:  # images: (B, C, H, W), labels: (B,)
        logits = session.run([OUTPUT_NAME], {INPUT_NAME: images.float().numpy()})[0]
        correct += int((torch.from_numpy(logits).argmax(1) == labels).sum())
        total += len(labels)
    return correct / total if total else 0.0
