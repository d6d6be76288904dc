"""A portable artifact of any network: a ``torch.export`` program (``.pt2``) that runs without your code.

:func:`lightning_spiral.save_model` files need your class to be rebuilt (:func:`~lightning_spiral.restore`);
a ``.pt2`` file does not: it holds the traced graph and the weights, and
``torch.export.load(path).module()`` gives a callable module in any process with the same PyTorch,
without importing your class or lightning-spiral.

What loading reads (checked in the torch 2.14 source, ``torch/export/__init__.py``,
``torch/export/pt2_archive/_package.py`` and ``torch/_export/serde/serialize.py``): the graph is
JSON (torch's export schema); plain dense weights and constants are raw tensor bytes described by
JSON metadata — no pickled code is needed for the files written here (tests check that no payload
is marked ``use_pickle``). The loader is not a sandbox, though: payloads marked ``use_pickle``
(tensor subclasses, custom objects) are read with ``torch.load(weights_only=False)`` or
``pickle.loads``, and other artifacts fall back to ``weights_only=False`` when the safe read fails.
So torch's own warning stands — a ``.pt2`` file from an untrusted source can run code; to receive
models from others, use :func:`~lightning_spiral.save_model` files (``weights_only=True``).

Example:
    >>> import tempfile, torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    >>> path = tempfile.mkdtemp() + "/net.pt2"
    >>> export_program(net, torch.randn(1, 4), path)
    >>> program = torch.export.load(path).module()
    >>> x = torch.randn(5, 4)
    >>> bool((program(x) - net(x)).abs().max() < 1e-6)
    True
"""

from __future__ import annotations

import copy
import io
import os

import torch
import torch.nn as nn

from lightning_spiral.atomic import atomic_write_bytes
from lightning_spiral.checks import check_bool, refuse
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.module_network import check_network, shown


def export_program(model: nn.Module, example_input: torch.Tensor, path: str | os.PathLike, *, dynamic_batch: bool = True) -> None:
    """Write ``model`` (in eval mode, on the CPU) as a ``torch.export`` program to ``path``, atomically.

    The caller's model is not changed: an eval-mode CPU copy is exported.

    Args:
        model: any network ``torch.export`` can trace (pruned or not).
        example_input: a batch the network takes, e.g. ``torch.randn(1, 3, 32, 32)`` or int64 token ids.
        path: the ``.pt2`` file to write; parent folders are created.
        dynamic_batch: make the first dimension dynamic (any batch size at run time); ``False``
            fixes it to ``example_input``'s batch size.

    Raises:
        SpiralConfigError: ``example_input`` is not a tensor batch, or ``torch.export`` cannot
            trace ``model`` (the message names the model and torch's error).
    """
    check_network("model", model)
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 1 or len(example_input) < 1:
        value = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else shown(example_input)
        raise refuse("example_input", value, "a tensor batch (N, ...) with N >= 1 the network takes")
    check_bool("dynamic_batch", dynamic_batch)
    cpu_model = copy.deepcopy(model).cpu().eval()
    example = example_input.detach().cpu()
    if dynamic_batch and len(example) == 1:
        example = torch.cat([example, example])  # torch.export specialises a batch of 1 to a constant
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
    try:
        with torch.no_grad():
            program = torch.export.export(cpu_model, (example,), dynamic_shapes=dynamic_shapes)
    except Exception as err:  # torch.export raises many types (UserError, Unsupported, RuntimeError, ...)
        raise SpiralConfigError(
            f"torch.export cannot export {type(model).__name__} with an input of shape {tuple(example_input.shape)} "
            f"({type(err).__name__}: {str(err).strip().splitlines()[0]})."
            + (" If its forward depends on the batch size, pass `dynamic_batch=False`." if dynamic_batch else "")
        ) from err
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    atomic_write_bytes(path, buffer.getvalue())
