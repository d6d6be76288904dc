"""Transformer distillation through the feature taps: TinyBERT hidden states and MiniLMv2 attention relations.

Both losses are ordinary :class:`FeatureLoss` terms: each reads one tapped tensor of the student and
one of the teacher (``student_path``, ``teacher_path``), so several layers — or the query, key and
value projections of a block — are several named terms of a :class:`WeightedSum`. :func:`layer_terms`
writes those terms from a path template and a layer mapping; :func:`uniform_layer_map` is TinyBERT's
default mapping for a student made shallower.

Paths, by architecture, in transformers 5 (``{}`` is the block index; check ``model.named_modules()``):

=================  ==================================  ===============================================================
model              blocks (:class:`HiddenStateLoss`)   projections (:class:`AttentionRelationLoss`)
=================  ==================================  ===============================================================
HF BERT            ``bert.encoder.layer.{}``           ``bert.encoder.layer.{}.attention.self.query`` (``key``, ``value``)
HF ViT             ``vit.layers.{}``                   ``vit.layers.{}.attention.q_proj`` (``k_proj``, ``v_proj``)
HF GPT-2           ``transformer.h.{}``                ``transformer.h.{}.attn.c_attn`` with ``fused_qkv=True``
torchvision ViT    ``encoder.layers.encoder_layer_{}`` none: ``nn.MultiheadAttention`` computes Q, K, V inside
=================  ==================================  ===============================================================

When depth was pruned from a ``ModuleList``, the student's block ``i`` is the teacher's block
``kept[i]``: the same template is filled with different indices for student and teacher, and the
layer map says which pairs to compare — ``list(enumerate(kept))`` for all of them, or
``[(len(kept) - 1, kept[-1])]`` for the last block only (MiniLMv2's choice for base-size teachers).

What the engine lets a feature term see is the two tapped tensors, not the batch: padded positions
(and, for GPT-2, future positions) are included in the relations. Pad batches to their own longest
sequence to keep their share small.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lightning_spiral.checks import check_bool, check_int, refuse
from lightning_spiral.distill.feature_base import FeatureLoss
from lightning_spiral.errors import SpiralConfigError

#: ``(student_block, teacher_block)`` index pairs, 0-based.
LayerMap = Sequence[tuple[int, int]]


def first_tensor(output: Any) -> Any:
    """A block's output tensor: Hugging Face blocks return ``(hidden, ...)`` tuples in some versions, a tensor in others."""
    return output[0] if isinstance(output, (tuple, list)) else output


def uniform_layer_map(n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    """TinyBERT's uniform mapping ``g(m) = m * N / M`` (rounded down) as 0-based block pairs.

    Student block ``m`` (1-based, of ``M``) learns from teacher block ``g(m)`` (of ``N``), so the last
    student block learns from the last teacher block.

    Example:
        >>> uniform_layer_map(4, 12)
        [(0, 2), (1, 5), (2, 8), (3, 11)]
    """
    check_int("n_student", n_student, minimum=1)
    check_int("n_teacher", n_teacher, minimum=1)
    if n_student > n_teacher:
        raise refuse("n_student", n_student, f"an integer <= `n_teacher`={n_teacher}", "The student is the shallower network.")
    return [(m - 1, m * n_teacher // n_student - 1) for m in range(1, n_student + 1)]


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)  # lists, tuples, Hydra's ListConfig


def check_layer_map(layer_map: Any) -> list[tuple[int, int]]:
    """A non-empty sequence of ``(student_block, teacher_block)`` integer pairs, each student block once."""
    pairs = list(layer_map) if _is_sequence(layer_map) else []
    if not pairs or any(not _is_sequence(pair) or len(pair) != 2 for pair in pairs):
        raise refuse("layer_map", layer_map, "a non-empty list of (student_block, teacher_block) pairs",
                     "For example `uniform_layer_map(6, 12)` or `[(5, 11)]`.")
    for k, (student, teacher) in enumerate(pairs):
        check_int(f"layer_map[{k}][0]", student)
        check_int(f"layer_map[{k}][1]", teacher)
    students = [student for student, _ in pairs]
    if len(set(students)) != len(students):
        raise refuse("layer_map", layer_map, "pairs with distinct student blocks", "Each student block is compared once.")
    return [(student, teacher) for student, teacher in pairs]


def check_template(name: str, template: Any) -> str:
    """A module path with one ``{}`` where the block index goes."""
    if not isinstance(template, str) or template.count("{}") != 1:
        raise refuse(name, template, "a module path with one '{}' for the block index", "For example 'bert.encoder.layer.{}'.")
    return template


def layer_terms(
    name: str,
    loss: Callable[[str, str], FeatureLoss],
    path: str,
    layer_map: LayerMap,
    teacher_path: str | None = None,
) -> dict[str, FeatureLoss]:
    """One feature term per mapped block pair, named ``f"{name}_{student_block}"``, for a :class:`WeightedSum`.

    Args:
        name: prefix of the term names (logged as ``train/loss/<name>_<i>``).
        loss: builds a term from ``(student_path, teacher_path)``: a loss class, or a
            ``functools.partial`` of one with its settings.
        path: the student's module path template, e.g. ``"bert.encoder.layer.{}"``.
        layer_map: ``(student_block, teacher_block)`` pairs, e.g. from :func:`uniform_layer_map`.
        teacher_path: the teacher's template; defaults to ``path`` (same architecture).

    Example:
        >>> terms = layer_terms("hidden", HiddenStateLoss, "bert.encoder.layer.{}", uniform_layer_map(2, 4))
        >>> for key, term in terms.items():
        ...     print(key, term.student_path, term.teacher_path)
        hidden_0 bert.encoder.layer.0 bert.encoder.layer.1
        hidden_1 bert.encoder.layer.1 bert.encoder.layer.3
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise refuse("name", name, "an identifier (letters, digits, '_')", "Term names become ModuleDict keys and log names.")
    if not callable(loss):
        raise refuse("loss", loss, "a loss class or a function of (student_path, teacher_path)", "For example `HiddenStateLoss`.")
    student_template = check_template("path", path)
    teacher_template = check_template("teacher_path", path if teacher_path is None else teacher_path)
    return {
        f"{name}_{student}": loss(student_template.format(student), teacher_template.format(teacher))
        for student, teacher in check_layer_map(layer_map)
    }


class TransformerFeatureLoss(FeatureLoss):
    """A feature loss on ``(N, L, W)`` token features: takes the first element of tuple outputs and checks shapes.

    Subclasses implement :meth:`check` (called when a fit starts and on every batch) and
    :meth:`compute`; the base class detaches the teacher's side and casts to float32 outside autocast.
    """

    def prepare(self, student_feature: Any, teacher_feature: Any) -> None:
        self.check(first_tensor(student_feature), first_tensor(teacher_feature))  # refuse at the start of the fit

    def forward(self, student_feature: Any, teacher_feature: Any) -> torch.Tensor:
        teacher = first_tensor(teacher_feature).detach()  # the teacher learns nothing, as in RKDLoss
        return super().forward(first_tensor(student_feature), teacher)

    def check(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> None:
        s, t = tuple(student_feature.shape), tuple(teacher_feature.shape)
        if len(s) != 3 or len(t) != 3 or s[:2] != t[:2]:
            raise SpiralConfigError(
                f"{type(self).__name__} needs (N, L, W) token features with equal N and L; got student {s} at "
                f"{self.student_path!r} and teacher {t} at {self.teacher_path!r}."
            )


class HiddenStateLoss(TransformerFeatureLoss):
    """TinyBERT hidden-state distillation (Jiao et al. 2020, https://arxiv.org/abs/1909.10351), without a projection.

    The MSE between a student block's output and its mapped teacher block's output::

        loss = mean((H_s - H_t)^2)          H: (N, L, D)

    Pruning heads, MLP width or depth keeps the residual width ``D``, so no learned projection
    ``W_h`` is needed; different widths are refused.

    Args:
        student_path: the student block, e.g. ``"bert.encoder.layer.3"``.
        teacher_path: the mapped teacher block; defaults to ``student_path``.

    Example:
        >>> h = torch.ones(2, 5, 8)
        >>> loss = HiddenStateLoss("bert.encoder.layer.1", "bert.encoder.layer.3")
        >>> loss((h, None), torch.zeros(2, 5, 8)).item()  # tuple outputs: their first element
        1.0
        >>> loss
        HiddenStateLoss(MSE(student[bert.encoder.layer.1], teacher[bert.encoder.layer.3]))
    """

    def check(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> None:
        super().check(student_feature, teacher_feature)
        if student_feature.shape[-1] != teacher_feature.shape[-1]:
            raise SpiralConfigError(
                f"HiddenStateLoss needs the same hidden width for student and teacher, got {student_feature.shape[-1]} at "
                f"{self.student_path!r} and {teacher_feature.shape[-1]} at {self.teacher_path!r}; it builds no learned "
                "projection."
            )

    def compute(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
        self.check(student_feature, teacher_feature)
        return F.mse_loss(student_feature, teacher_feature)

    def extra_repr(self) -> str:
        return f"MSE(student[{self.student_path}], teacher[{self.teacher_path}])"


def relation_log_probs(projection: torch.Tensor, heads: int) -> torch.Tensor:
    """``(N, L, W) -> (N, R, L, L)``: ``log softmax(A_r A_r^T / sqrt(d_r))`` of ``R = heads`` slices of width ``W / R``."""
    n, length, width = projection.shape
    a = projection.reshape(n, length, heads, width // heads).transpose(1, 2)  # (N, R, L, d_r)
    return (a @ a.transpose(-1, -2) / math.sqrt(width // heads)).log_softmax(-1)


def relation_kl(student: torch.Tensor, teacher: torch.Tensor, heads: int) -> torch.Tensor:
    """``KL(teacher relation || student relation)`` of one projection, summed over keys, averaged over N, R and queries."""
    log_s, log_t = relation_log_probs(student, heads), relation_log_probs(teacher, heads)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean()


class AttentionRelationLoss(TransformerFeatureLoss):
    """MiniLMv2 self-attention relation distillation (Wang et al. 2021, https://arxiv.org/abs/2012.15828).

    A projection ``A`` (queries, keys or values, ``(N, L, H*d)``) is cut into ``R = relation_heads``
    slices of width ``d_r``, whatever the number of attention heads; its relation is the attention
    its tokens pay to each other, compared by KL divergence::

        R_r(A) = softmax(A_r A_r^T / sqrt(d_r))                                  (N, R, L, L)
        loss   = 1 / (N R L) * sum_{n, r, i} KL(R_r(A_t)[n, i] || R_r(A_s)[n, i])

    Student and teacher may have different head counts (pruned heads): only ``R`` must divide both
    widths. MiniLMv2 sums the Q-Q, K-K and V-V relations: with separate projections (BERT), that is
    three terms of weight 1 in a :class:`WeightedSum`; with a fused ``[Q | K | V]`` projection (GPT-2's
    ``attn.c_attn``, ``fused_qkv=True``) the last dimension is split in three and the three are summed here.
    Padded positions count (the term sees only the tapped tensors).

    Args:
        student_path: the student's projection, e.g. ``"bert.encoder.layer.5.attention.self.query"``.
        teacher_path: the teacher's; defaults to ``student_path``.
        relation_heads: ``R``, the number of relation heads (>= 1); must divide both widths.
        fused_qkv: whether the tensor is ``[Q | K | V]`` along its last dimension.

    Example:
        >>> q_student, q_teacher = torch.randn(2, 5, 16), torch.randn(2, 5, 32)  # 2 heads vs 4 heads of 8
        >>> loss = AttentionRelationLoss("encoder.layer.5.attention.self.query", relation_heads=4)
        >>> loss(q_student, q_teacher).item() > 0, round(loss(q_teacher, q_teacher).item(), 6)
        (True, 0.0)
    """

    def __init__(
        self,
        student_path: str,
        teacher_path: str | None = None,
        relation_heads: int = 1,
        fused_qkv: bool = False,
    ) -> None:
        super().__init__(student_path, teacher_path)
        self.relation_heads = check_int("relation_heads", relation_heads, minimum=1, hint="The number of slices Q, K and V are cut into; 1 always works.")
        self.fused_qkv = check_bool("fused_qkv", fused_qkv, hint="True for a fused [Q | K | V] projection (GPT-2 `attn.c_attn`).")

    def check(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> None:
        super().check(student_feature, teacher_feature)
        widths = (student_feature.shape[-1], teacher_feature.shape[-1])
        if self.fused_qkv and any(width % 3 for width in widths):
            raise SpiralConfigError(
                f"`fused_qkv`=True needs widths divisible by 3 ([Q | K | V]), got student {widths[0]} at "
                f"{self.student_path!r} and teacher {widths[1]} at {self.teacher_path!r}."
            )
        student_width, teacher_width = (width // 3 if self.fused_qkv else width for width in widths)
        if student_width % self.relation_heads or teacher_width % self.relation_heads:
            raise refuse("relation_heads", self.relation_heads,
                         f"a divisor of both projection widths (student {student_width} at {self.student_path!r}, "
                         f"teacher {teacher_width} at {self.teacher_path!r})", "1 always works.")

    def compute(self, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
        self.check(student_feature, teacher_feature)
        parts = 3 if self.fused_qkv else 1
        pairs = zip(student_feature.chunk(parts, dim=-1), teacher_feature.chunk(parts, dim=-1))  # Q, K, V when fused
        return torch.stack([relation_kl(s, t, self.relation_heads) for s, t in pairs]).sum()

    def extra_repr(self) -> str:
        relations = "sum over Q, K, V of " if self.fused_qkv else ""
        return (f"{relations}KL(relation(teacher[{self.teacher_path}]) || relation(student[{self.student_path}])), "
                f"relation_heads={self.relation_heads}")
