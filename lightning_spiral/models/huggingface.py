"""Hugging Face transformers as plain networks, built from a config (no download), and saved back.

``build_model("hf.bert", num_classes=2, input_shape=(64,), hidden_size=256, …)`` builds a
randomly initialised ``BertForSequenceClassification`` from a ``BertConfig`` (``"hf.gpt2"``:
``GPT2ForSequenceClassification``, ``"hf.vit"``: ``ViTForImageClassification`` on ``(C, H, W)``
images) wrapped in :class:`HuggingFaceClassifier`: a tensor in, the logits out, so the spiral,
distillation, measurement and export treat it like any CNN. Token ids of ``pad_token_id`` are
masked out of attention. The keyword arguments are the config's own (checked against its
signature: a typo is refused, not swallowed).

:func:`save_pretrained` writes the pruned model in Hugging Face's format, where the config of the
installed ``transformers`` can express its shapes: MLP width, depth, and heads where the config
has a separate ``head_dim`` (ViT, LLaMA-style models). BERT and GPT-2 derive the head size from
``hidden_size / num_attention_heads``, so their pruned *heads* are not expressible; prune them with
``units="mlp"`` (MLP width and depth only) for a Hugging Face round trip, or use
:func:`lightning_spiral.save_model` and :func:`lightning_spiral.restore`, which cover every shape.
``transformers`` is an optional extra: ``pip install 'lightning-spiral[transformers]'``.

Example:
    >>> import torch
    >>> net = build_huggingface_model("bert", 2, (16,), vocab_size=50, hidden_size=32, num_hidden_layers=2,
    ...                               num_attention_heads=4, intermediate_size=64)
    >>> net(torch.randint(1, 50, (3, 16))).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from lightning_spiral.checks import check_choice, check_int, refuse
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models.spec import check_sizes

HF_PREFIX = "hf."
#: kind -> (config class, model class, input kind) in ``transformers``.
HF_MODELS: dict[str, tuple[str, str, str]] = {
    "bert": ("BertConfig", "BertForSequenceClassification", "tokens"),
    "gpt2": ("GPT2Config", "GPT2ForSequenceClassification", "tokens"),
    "vit": ("ViTConfig", "ViTForImageClassification", "image"),
}
_INSTALL = "Install the extra: pip install 'lightning-spiral[transformers]'."


class HuggingFaceClassifier(nn.Module):
    """A Hugging Face classification model as a network of one tensor: token ids or pixels in, logits out.

    Args:
        model: a ``transformers`` model whose output has ``.logits``.
        pad_token_id: token id masked out of attention (``attention_mask = ids != pad_token_id``);
            ``None`` attends to every position. Ignored for image models.

    Example:
        >>> from transformers import BertConfig, BertForSequenceClassification
        >>> bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
        ...                                                 num_attention_heads=2, intermediate_size=64))
        >>> HuggingFaceClassifier(bert)(torch.tensor([[5, 7, 0, 0]])).shape
        torch.Size([1, 2])
    """

    def __init__(self, model: nn.Module, pad_token_id: int | None = 0) -> None:
        super().__init__()
        self.hf = model
        self.pad_token_id = pad_token_id

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            return self.hf(pixel_values=x).logits
        mask = None if self.pad_token_id is None else x.ne(self.pad_token_id).long()
        return self.hf(input_ids=x, attention_mask=mask).logits


def build_huggingface_model(kind: str, num_classes: int, input_shape: tuple[int, ...], **config: Any) -> HuggingFaceClassifier:
    """A random-init Hugging Face ``kind`` model (``"bert"``, ``"gpt2"``, ``"vit"``) for ``num_classes``.

    ``input_shape`` is ``(sequence_length,)`` for text (position embeddings cover it) or ``(C, H, W)``
    for ViT; ``config`` are keyword arguments of the model's config class.
    """
    transformers = _transformers()
    check_choice("name", f"{HF_PREFIX}{kind}", [f"{HF_PREFIX}{k}" for k in HF_MODELS])
    config_name, model_name, inputs = HF_MODELS[kind]
    config_class = getattr(transformers, config_name)
    allowed = [p for p in inspect.signature(config_class.__init__).parameters if p not in ("self", "kwargs")]
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise SpiralConfigError(f"Unknown keyword arguments {unknown} for model {HF_PREFIX}{kind!r}; "
                                f"{config_name} accepts {allowed}.")
    settings = {**config, **_shape_settings(kind, inputs, input_shape), "num_labels": check_int("num_classes", num_classes, 2)}
    model = getattr(transformers, model_name)(config_class(**settings))
    return HuggingFaceClassifier(model, pad_token_id=settings.get("pad_token_id", 0) if inputs == "tokens" else None)


def _shape_settings(kind: str, inputs: str, input_shape: tuple[int, ...]) -> dict[str, Any]:
    if inputs == "image":
        channels, height, width = check_sizes("input_shape", input_shape, length=3, what="(C, H, W)")
        if height != width:
            raise refuse("input_shape", input_shape, "(C, H, W) with H == W for a ViT")
        return {"num_channels": channels, "image_size": height}
    (length,) = check_sizes("input_shape", input_shape, length=1, what="(sequence_length,)")
    if kind == "gpt2":  # GPT-2 classifies at the last non-padding token, so it must know the padding id
        return {"n_positions": max(length, 1), "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 1}
    return {"max_position_embeddings": max(length, 512)}


def _transformers() -> Any:
    try:
        return importlib.import_module("transformers")
    except ImportError as err:
        raise SpiralConfigError(f"Hugging Face models need the `transformers` package. {_INSTALL}") from err


def hf_model_of(model: nn.Module) -> nn.Module:
    """The ``transformers`` model inside ``model`` (itself, or a :class:`HuggingFaceClassifier`'s ``hf``)."""
    inner = model.hf if isinstance(model, HuggingFaceClassifier) else model
    if not hasattr(inner, "save_pretrained") or not hasattr(inner, "config"):
        raise refuse("model", type(model).__name__, "a Hugging Face PreTrainedModel or a HuggingFaceClassifier")
    return inner


def check_expressible(model: nn.Module) -> None:
    """Refuse, naming the first tensor, unless the model's own config rebuilds every tensor shape.

    The check builds the config's architecture on the ``meta`` device (no memory, no download) and
    compares its state dict with the model's.
    """
    hf = hf_model_of(model)
    with torch.device("meta"):
        rebuilt = type(hf)(copy.deepcopy(hf.config)).state_dict()
    for key, tensor in hf.state_dict().items():
        expected = rebuilt.get(key)
        if expected is None or tuple(expected.shape) != tuple(tensor.shape):
            shown = "missing" if expected is None else tuple(expected.shape)
            raise SpiralConfigError(
                f"{type(hf.config).__name__} cannot express the pruned {key!r} (it holds {tuple(tensor.shape)}, "
                f"the config builds {shown}): {type(hf).__name__} derives it from the config. Prune with "
                "`units='mlp'` (MLP width and depth) for a Hugging Face round trip, or save with lightning_spiral.save_model "
                "and reload with lightning_spiral.restore."
            )


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``model`` with Hugging Face's ``save_pretrained`` into a new ``directory``; return its path.

    Raises:
        SpiralConfigError: the config cannot express the pruned shapes (see :func:`check_expressible`),
            or ``directory`` exists already (nothing is overwritten). Checked before anything is written.

    Example:
        >>> import tempfile
        >>> from transformers import ViTForImageClassification
        >>> from lightning_spiral.pruning import prune
        >>> net = build_huggingface_model("vit", 10, (3, 16, 16), hidden_size=32, num_hidden_layers=2,
        ...                               num_attention_heads=4, intermediate_size=64, patch_size=8)
        >>> _ = prune(net, torch.randn(1, 3, 16, 16), amount=0.5)
        >>> out = save_pretrained(net, tempfile.mkdtemp() + "/vit")
        >>> ViTForImageClassification.from_pretrained(out).config.num_attention_heads
        2
    """
    hf = hf_model_of(model)
    target = Path(directory)
    if target.exists():
        raise refuse("directory", str(target), "a path that does not exist yet (nothing is overwritten)")
    check_expressible(hf)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        hf.save_pretrained(staging)
        os.replace(staging, target)  # the folder appears whole or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
