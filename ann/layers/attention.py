"""Multi-head self- and cross-attention through ``F.scaled_dot_product_attention``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention: fused QKV projection, SDPA, output projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim {dim} not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.heads, D // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, L, D/heads)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, L, D/heads)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))  # (B, L, D)


class CrossAttention(nn.Module):
    """Multi-head attention of query tokens `x` over context tokens `ctx`."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim {dim} not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        Lc = ctx.shape[1]
        q = self.q(x).reshape(B, L, self.heads, D // self.heads).transpose(1, 2)
        kv = self.kv(ctx).reshape(B, Lc, 2, self.heads, D // self.heads)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, Lc, D/heads)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, L, D/heads)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))  # (B, L, D)
