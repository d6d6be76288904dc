"""Measurement of a model: parameters, MACs, sparsity, CPU latency and file size — the one place.

Every figure the spiral reports comes from here, so teacher, students and exported models are
measured the same way:

- MACs are counted by Torch-Pruning's ``count_ops_and_params`` for **one sample** (it divides by the
  batch size) and include the cheap layers it knows (bias adds, BatchNorm, ReLU, pooling). A network
  that computes attention is counted by PyTorch's ``FlopCounterMode`` instead (module hooks miss the
  attention matmuls and Hugging Face's ``Conv1D``): every matmul, convolution and attention product,
  on the real forward path (the attention mask included), MACs = FLOPs / 2.
- Latency is the fastest wall-clock time of ``model(x)`` on the CPU after a warm-up, in eval mode,
  under ``torch.inference_mode()`` and a fixed thread count. The fastest call resists the outliers a shared
  machine produces; ratios between models are steadier than absolute times. Exported models are
  timed the same way in ONNX Runtime, their serving runtime (:func:`measure_onnx_latency`).

Every helper leaves the model as it found it: each module's train/eval flag, the global thread
count and the model's device are restored or left untouched.

Example:
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> count_params(net)
    58
    >>> m = measure_model(net, (4,), repeats=2, warmup=0, threads=1)
    >>> m.params, m.sparsity
    (58, 0.0)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import Literal, get_args

import torch
import torch.nn as nn
import torch_pruning as tp
from torch.utils import flop_counter

from lightning_spiral.checks import check_choice, check_int, refuse
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models.spec import check_sizes, random_input
from lightning_spiral.module_network import check_network
from lightning_spiral.timing import prepared, time_calls, time_forward, timing_threads

aten = torch.ops.aten
# Attention products: where one of these runs, hooks on modules miss MACs and FlopCounterMode counts.
_ATTENTION_OPS = {aten.bmm, aten.baddbmm, aten._scaled_dot_product_flash_attention_for_cpu,
                  aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_flash_attention,
                  aten._scaled_dot_product_cudnn_attention}
# torch's counter has no formula for the CPU flash kernel; it computes the same products as the others.
_CPU_ATTENTION = {aten._scaled_dot_product_flash_attention_for_cpu:
                  lambda query, key, value, *_args, out_shape=None, **_kwargs: flop_counter.sdpa_flop_count(query, key, value)}

# Layers whose weights structured and unstructured pruning act on.
_WEIGHTED_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)

MemoryFormat = Literal["contiguous", "channels_last"]


@dataclasses.dataclass(frozen=True)
class ModelMeasurement:
    """The figures of one model, as reported for every spiral stage.

    Args:
        params: number of parameters (all of them, trainable or not).
        macs: multiply-accumulates of one forward pass of one sample.
        latency_ms_b1: CPU latency of a batch of 1 (fastest of the repeats), in milliseconds.
        latency_ms_b64: CPU latency of a batch of 64 (fastest of the repeats), in milliseconds.
        sparsity: fraction of exactly-zero Conv/Linear weights (0.0 for a dense model).
    """

    params: int
    macs: int
    latency_ms_b1: float
    latency_ms_b64: float
    sparsity: float


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model``, trainable or frozen.

    Example:
        >>> count_params(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example_inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, per sample, counted by Torch-Pruning.

    The count covers weights and biases (a bias adds one MAC per output element) and the
    BatchNorm, activation and pooling layers Torch-Pruning knows. ``example_inputs`` must live on
    the model's device; its batch size does not change the result. The model is not modified:
    its modes are restored and no hooks are left behind.

    Args:
        model: the model to count.
        example_inputs: one input batch, e.g. ``torch.randn(1, 3, 32, 32)``.

    Returns:
        The MACs of one sample, as an integer.

    Raises:
        SpiralConfigError: ``example_inputs`` do not run through ``model``.

    Example:
        >>> count_macs(nn.Linear(10, 5), torch.randn(1, 10))  # 10 * 5 weights + 5 bias adds
        55
    """
    check_network("model", model)
    if not isinstance(example_inputs, torch.Tensor):
        raise refuse("example_inputs", example_inputs, "a tensor batch, e.g. torch.randn(1, 3, 32, 32)")
    # count_ops_and_params (1.6.1) counts on a deep copy in eval mode; switching the original to
    # eval as well keeps BatchNorm statistics safe should a later version count in place.
    try:
        attention_macs = count_attention_macs(model, example_inputs)
        if attention_macs is not None:
            return attention_macs
        with _eval_mode(model), torch.no_grad():
            macs, _params = tp.utils.count_ops_and_params(model, example_inputs)
    except (RuntimeError, TypeError, ValueError, IndexError) as err:
        raise SpiralConfigError(
            f"`example_inputs` of shape {tuple(example_inputs.shape)} do not run through {type(model).__name__} "
            f"({type(err).__name__}: {str(err).splitlines()[0]}), so its MACs cannot be counted. Pass a batch its "
            "forward takes (what your `training_step` passes to it, after any reshaping)."
        ) from err
    return int(macs)


def count_attention_macs(model: nn.Module, example_inputs: torch.Tensor) -> int | None:
    """MACs of one sample counted by ``FlopCounterMode`` if ``model`` computes attention, else ``None``.

    Gradients stay enabled for the pass: ``nn.MultiheadAttention`` then takes its plain path instead
    of the fused inference kernel, which the counter cannot see into.

    Example:
        >>> mha_block = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
        >>> # 4 tokens: q, k, v 4*16*48 + scores and mixing 2*4*4*16 + output 4*16*16 + MLP 2*4*16*32
        >>> count_attention_macs(mha_block, torch.randn(1, 4, 16))
        8704
        >>> count_attention_macs(nn.Linear(4, 2), torch.randn(1, 4)) is None
        True
    """
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION)
    with _eval_mode(model), torch.enable_grad(), counter:
        model(example_inputs)
    counts = counter.get_flop_counts().get("Global", {})
    if not _ATTENTION_OPS & set(counts):
        return None
    return int(counter.get_total_flops() // 2 // max(len(example_inputs), 1))


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_size: int,
    *,
    repeats: int = 20,
    warmup: int = 5,
    threads: int = 2,
    memory_format: MemoryFormat = "contiguous",
) -> float:
    """CPU wall-clock time of ``model(x)`` for a random ``x`` of ``(batch_size, *input_shape)``: the fastest of ``repeats``.

    Runs ``warmup`` untimed calls, then ``repeats`` timed calls of an eval-mode copy under
    ``torch.inference_mode()``, timed by :mod:`lightning_spiral.timing` (``torch.utils.benchmark.Timer``)
    with ``threads`` capped at the cores the process may use. The caller's model keeps its device,
    layout and modes. To compare models, time them side by side with
    :func:`lightning_spiral.timing.interleaved_latency` instead of one after another.

    ``memory_format="channels_last"`` times an NHWC copy of the model on an NHWC input (image
    models only). On CPU it is often the faster layout, above all for depthwise convolutions, whose
    NCHW kernels barely speed up when channels are removed (benchmarks/RESULTS.md, latency).

    Args:
        model: the model to time.
        input_shape: shape of one sample without the batch dimension, e.g. ``(3, 32, 32)``.
        batch_size: samples per call, at least 1.
        repeats: timed calls, at least 1 (use at least 20 for a stable figure).
        warmup: untimed calls before timing, at least 0.
        threads: intra-op threads used while timing, at least 1 (capped at the usable cores).
        memory_format: ``"contiguous"`` (NCHW, PyTorch's default) or ``"channels_last"`` (NHWC;
            needs a ``(C, H, W)`` input shape).

    Returns:
        The latency in milliseconds (the fastest call: other load only adds time).

    Example:
        >>> measure_latency(nn.Linear(4, 2), (4,), batch_size=1, repeats=3, warmup=0) > 0
        True
    """
    check_network("model", model)
    input_shape = check_input_shape(input_shape)
    _check_timing(batch_size, repeats, warmup, threads)
    _check_memory_format(memory_format, input_shape)
    timed, x = prepared(_on_cpu(model), input_shape, batch_size, memory_format)
    return time_forward(timed, x, repeats=repeats, warmup=warmup, threads=timing_threads(threads))


def measure_onnx_latency(
    path: str | os.PathLike,
    input_shape: Sequence[int],
    batch_size: int,
    *,
    repeats: int = 20,
    warmup: int = 5,
    threads: int = 2,
) -> float:
    """Median wall-clock time of one ONNX Runtime call on the model file at ``path``, like :func:`measure_latency`.

    The session runs ops on ``threads`` threads (one inter-op thread); the input is random
    ``(batch_size, *input_shape)`` float32. Needs the ``deploy`` extra.

    Returns:
        The latency in milliseconds (the fastest call).
    """
    from lightning_spiral.deploy.runtime import INPUT_NAME, onnx_session

    input_shape = check_input_shape(input_shape)
    _check_timing(batch_size, repeats, warmup, threads)
    session = onnx_session(path, threads=timing_threads(threads))
    feed = {INPUT_NAME: torch.randn(batch_size, *input_shape).numpy()}  # (B, *input_shape)
    return time_calls(lambda: session.run(None, feed), repeats=repeats, warmup=warmup)


def sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero elements among the weights of Conv and Linear layers.

    Biases and other layers are not counted. A model without such layers has sparsity 0.0.

    Example:
        >>> layer = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = layer.weight[0].zero_()
        >>> sparsity(layer)
        0.5
    """
    zeros = total = 0
    for module in model.modules():
        if isinstance(module, _WEIGHTED_LAYERS) and module.weight is not None:
            weight = module.weight.detach()
            zeros += int((weight == 0).sum())
            total += weight.numel()
    return zeros / total if total else 0.0


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of exactly-zero weights of every Conv and Linear layer, by module path.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> with torch.no_grad():
        ...     _ = net[1].weight.zero_()
        >>> layer_sparsity(net)
        {'0': 0.0, '1': 1.0}
    """
    return {
        name: float((module.weight.detach() == 0).float().mean())
        for name, module in model.named_modules()
        if isinstance(module, _WEIGHTED_LAYERS) and module.weight is not None
    }


def measure_model(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    repeats: int = 20,
    warmup: int = 5,
    threads: int = 2,
    memory_format: MemoryFormat = "contiguous",
) -> ModelMeasurement:
    """All figures of :class:`ModelMeasurement` for ``model``, measured on the CPU.

    Args:
        model: the model to measure; it is left on its device and in its modes.
        input_shape: shape of one sample without the batch dimension, e.g. ``(3, 32, 32)``.
        repeats: timed calls per latency (see :func:`measure_latency`).
        warmup: untimed calls before each latency.
        threads: intra-op threads used while timing.
        memory_format: layout the latencies are timed in (see :func:`measure_latency`).

    Example:
        >>> m = measure_model(nn.Linear(4, 2), (4,), repeats=2, warmup=0, threads=1)
        >>> m.params, m.macs
        (10, 10)
    """
    check_network("model", model)
    input_shape = check_input_shape(input_shape)
    _check_timing(1, repeats, warmup, threads)
    _check_memory_format(memory_format, input_shape)
    cpu_model = _on_cpu(model)  # one copy for all figures when the model lives elsewhere

    def latency(batch_size: int) -> float:
        return measure_latency(
            cpu_model, input_shape, batch_size, repeats=repeats, warmup=warmup, threads=threads,
            memory_format=memory_format,
        )

    return ModelMeasurement(
        params=count_params(cpu_model),
        macs=count_macs(cpu_model, random_input(cpu_model, input_shape, 1)),
        latency_ms_b1=latency(1),
        latency_ms_b64=latency(64),
        sparsity=sparsity(cpu_model),
    )


def file_size(path: str | os.PathLike) -> int:
    """Size of the file at ``path`` in bytes (``FileNotFoundError`` if it does not exist).

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as handle:
        ...     _ = handle.write(b"abc"); handle.flush()
        ...     file_size(handle.name)
        3
    """
    return os.stat(path).st_size


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode, then restore every module's own flag (mixed modes survive)."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def _on_cpu(model: nn.Module) -> nn.Module:
    """``model`` itself if all its tensors are on the CPU, else a CPU deep copy."""
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device.type == "cpu" for t in tensors):
        return model
    return copy.deepcopy(model).cpu()


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """One sample's shape (no batch dimension), as a tuple of integers >= 1; raises naming ``input_shape``."""
    return check_sizes("input_shape", input_shape,
                       hint="Give one sample's shape without the batch dimension, e.g. (3, 32, 32).")


def _check_timing(batch_size: int, repeats: int, warmup: int, threads: int) -> None:
    """The timing arguments shared by every latency measurement."""
    check_int("batch_size", batch_size, 1, hint="Time one call of at least one sample.")
    check_int("repeats", repeats, 1, hint="Use at least 20 for a stable figure.")
    check_int("warmup", warmup, 0, hint="Use 0 to skip the warm-up.")
    check_threads(threads)


def check_threads(threads: int) -> int:
    """The CPU thread count of a measurement or session: an integer >= 1."""
    return check_int("threads", threads, 1, hint="Pass the thread count the model will run with.")


def _check_memory_format(memory_format: str, input_shape: tuple[int, ...]) -> None:
    """A known layout; ``channels_last`` only for an image shape ``(C, H, W)``."""
    check_choice("memory_format", memory_format, get_args(MemoryFormat))
    if memory_format == "channels_last" and len(input_shape) != 3:
        raise refuse("input_shape", input_shape, "an image shape (C, H, W) with memory_format='channels_last'",
                     "Use memory_format='contiguous' for other inputs.")
