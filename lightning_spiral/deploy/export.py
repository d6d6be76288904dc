"""Export a model for serving without lightning-spiral: ONNX and ``torch.export`` (``.pt2``), batch dynamic.

Any stage's model is a plain ``nn.Module`` (``lightning_spiral.load_model(path)``), so both exports
take any module and one sample's ``input_shape``. The ONNX file goes through the dynamo exporter
(``torch.onnx.export(..., dynamo=True)``, which needs ``onnxscript``); its per-node metadata (stack
traces naming source files of the exporting machine) is dropped, so the file says nothing about
where it was made and stays small. Both files are written atomically.

:func:`onnx_parity` runs the exported file in ONNX Runtime on real batches and compares it with
PyTorch: the largest absolute logit difference and the share of samples whose top-1 class agrees.

Example:
    >>> import tempfile, torch.nn as nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    >>> path = tempfile.mkdtemp() + "/net.onnx"
    >>> export_onnx(net, path, (1, 4, 4))  # doctest: +SKIP
    >>> onnx_parity(net, path, [torch.randn(5, 1, 4, 4)]).top1_agreement  # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from lightning_spiral.atomic import atomic_write_bytes
from lightning_spiral.deploy.runtime import INPUT_NAME, OUTPUT_NAME, onnx_session, require_deploy_extra
from lightning_spiral.measure import _eval_mode, check_input_shape, check_threads
from lightning_spiral.module_network import check_network
from lightning_spiral.portable import export_program

if TYPE_CHECKING:
    import onnx

#: Opset of the exported graphs; ONNX Runtime's QDQ quantizer and fp16 converter handle it.
OPSET = 18


@dataclasses.dataclass(frozen=True)
class Parity:
    """How closely an exported model reproduces PyTorch on the same inputs.

    Args:
        max_abs_diff: largest absolute difference of any output logit.
        top1_agreement: share of samples whose arg-max class is the same, in [0, 1].
        samples: number of samples compared.
    """

    max_abs_diff: float
    top1_agreement: float
    samples: int


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape: Sequence[int]) -> None:
    """Write ``model`` as an ONNX graph with a dynamic batch dimension to ``path``, atomically.

    The input is named ``input`` (``(batch, *input_shape)``, float32) and the output ``logits``.
    """
    check_network("model", model)
    shape = check_input_shape(input_shape)
    require_deploy_extra("export_onnx")
    import onnx

    cpu_model = _cpu_copy(model)
    example = torch.randn(2, *shape)  # a batch of 2: a batch of 1 would be specialised as a constant
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter warns about its own internals on every call
        program = torch.onnx.export(
            cpu_model, (example,), dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False,
        )
    proto = program.model_proto
    strip_metadata(proto)
    onnx.checker.check_model(proto)
    atomic_write_bytes(path, proto.SerializeToString())


def export_pt2(model: nn.Module, path: str | os.PathLike, input_shape: Sequence[int]) -> None:
    """Write ``model`` as a ``torch.export`` program (``.pt2``) with a dynamic batch dimension, atomically.

    Load it with ``torch.export.load(path).module()``: plain PyTorch, no lightning-spiral import.
    The shape-taking form of :func:`lightning_spiral.portable.export_program`.
    """
    check_network("model", model)
    export_program(model, torch.randn(2, *check_input_shape(input_shape)), path)


def strip_metadata(proto: onnx.ModelProto) -> None:
    """Drop per-node metadata, doc strings and the inferred shapes of intermediate values; shorten names.

    Metadata holds stack traces with the exporting machine's file paths and is never read at run
    time; shapes are inferred again when a session loads the graph. Node names are optional in
    ONNX, and internal tensor names (``/features/features.0/Conv_output_0_quantized``…) become
    ``t<i>``: in a small INT8 graph those names are ~10% of the file. The graph's inputs and
    outputs keep their names.
    """
    graph = proto.graph
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
        node.name = ""
    del graph.value_info[:]
    _shorten_tensor_names(graph)


def _shorten_tensor_names(graph: onnx.GraphProto) -> None:
    """Rename every internal tensor of ``graph`` to ``t<i>`` (inputs and outputs keep their names)."""
    kept = {value.name for value in (*graph.input, *graph.output)}
    renamed: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in kept:
            return name
        return renamed.setdefault(name, f"t{len(renamed)}")

    for initializer in graph.initializer:
        initializer.name = short(initializer.name)
    for node in graph.node:
        node.input[:] = [short(name) for name in node.input]
        node.output[:] = [short(name) for name in node.output]


def onnx_parity(model: nn.Module, path: str | os.PathLike, batches: Iterable[torch.Tensor], threads: int = 2) -> Parity:
    """Compare the ONNX file at ``path`` run in ONNX Runtime with ``model`` in PyTorch on ``batches``."""
    check_network("model", model)
    check_threads(threads)
    session = onnx_session(path, threads=threads)
    cpu_model = _cpu_copy(model)
    worst, agree, total = 0.0, 0, 0
    with _eval_mode(cpu_model), torch.no_grad():
        for x in batches:  # x: (B, *input_shape)
            expected = cpu_model(x.cpu().float())
            got = torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.cpu().float().numpy()})[0])
            worst = max(worst, float((got - expected).abs().max()))
            agree += int((got.argmax(1) == expected.argmax(1)).sum())
            total += len(x)
    return Parity(max_abs_diff=worst, top1_agreement=agree / total if total else 0.0, samples=total)


def _cpu_copy(model: nn.Module) -> nn.Module:
    """An eval-mode CPU copy, so exporting never changes the caller's model or its device."""
    return copy.deepcopy(model).cpu().eval()
