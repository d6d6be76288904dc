"""``nn.MultiheadAttention`` with fewer heads than its embedding width allows.

``nn.MultiheadAttention`` ties its inner width to ``embed_dim`` (``head_dim = embed_dim //
num_heads``), so it cannot hold 6 of 12 heads of a 768-wide model. :class:`HeadPrunedAttention`
takes its place once heads are removed: the same parameters under the same names
(``in_proj_weight``, ``in_proj_bias``, ``out_proj``), so state dicts keep their keys, with an inner
width of ``num_heads * head_dim``. It covers the self-attention, batch-first call that torchvision's
``VisionTransformer`` makes (``attn(x, x, x, need_weights=False)``) and computes it with
:func:`torch.nn.functional.scaled_dot_product_attention`.

Example:
    >>> import torch
    >>> mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    >>> x = torch.randn(2, 5, 32)
    >>> twin = HeadPrunedAttention(mha).eval()
    >>> torch.allclose(twin(x, x, x)[0], mha(x, x, x, need_weights=False)[0], atol=1e-6)
    True
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_spiral.errors import PruningError


class HeadPrunedAttention(nn.Module):
    """Batch-first self-attention with ``num_heads`` heads of ``head_dim`` each, taken over from ``attention``.

    Args:
        attention: the ``nn.MultiheadAttention`` (packed input projection, ``batch_first=True``) or
            ``HeadPrunedAttention`` whose parameters this module adopts.
    """

    def __init__(self, attention: nn.Module) -> None:
        super().__init__()
        self.embed_dim = attention.embed_dim
        self.head_dim = attention.head_dim
        self.num_heads = attention.num_heads
        self.dropout = attention.dropout
        self.batch_first = True
        self.in_proj_weight = attention.in_proj_weight  # [3 * heads * head_dim, embed_dim]: q | k | v
        self.in_proj_bias = attention.in_proj_bias
        self.out_proj = attention.out_proj

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, need_weights: bool = False,
                attn_mask: torch.Tensor | None = None, **_unused: object) -> tuple[torch.Tensor, None]:
        """Self-attention of ``query`` ``[B, L, embed_dim]``; returns ``(output [B, L, embed_dim], None)``."""
        if key is not query or value is not query or need_weights:
            raise PruningError("A head-pruned attention computes self-attention only (query is key is value, "
                               "need_weights=False), the call torchvision's VisionTransformer makes.")
        batch, length, _ = query.shape
        q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)  # [B, L, H*d] each
        q, k, v = (t.view(batch, length, -1, self.head_dim).transpose(1, 2) for t in (q, k, v))  # [B, H, L, d]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, -1)), None
