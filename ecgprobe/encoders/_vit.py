"""Pre-norm transformer blocks shared by the ViT-style ECG families (ECG-JEPA, ST-MEM).

Both official implementations use the same arithmetic — ``x + attn(LN(x))`` then
``x + mlp(LN(x))``, multi-head attention with a fused ``qkv`` projection split as
``(3, heads, head_dim)``, scale ``head_dim ** -0.5``, exact-erf GELU — under different
parameter names; each family maps its published names onto these (timm-style) ones.
Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` (the same
softmax attention; fused kernels on GPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Attention", "Block", "Mlp", "mean_tokens"]


class Attention(nn.Module):
    """Multi-head self-attention with an optional boolean mask (``True`` = may attend)."""

    def __init__(self, dim: int, heads: int, head_dim: int, *, qkv_bias: bool) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=qkv_bias)
        self.proj = nn.Linear(heads * head_dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_dim: int, *, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, head_dim, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


def mean_tokens(output: object) -> torch.Tensor:
    """Mean over the token axis of a ``(B, T, C)`` block output."""
    out = output[0] if isinstance(output, (tuple, list)) else output
    return out.mean(dim=1)  # type: ignore[union-attr]
