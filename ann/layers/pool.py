"""Pooling of the decoder's maps over segments and space into one feature vector."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, S, F, h, w) -> (B, F)
        return x.mean(dim=(1, 3, 4))


class ClassTokenPool(nn.Module):
    """A learned class token attends over all S*h*w positions (single head, CaiT-style
    class attention), replacing global average pooling."""

    def __init__(self, dim: int):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, S, F, h, w) -> (B, F)
        B, S, C, h, w = x.shape
        t = self.norm(x.permute(0, 1, 3, 4, 2).reshape(B, S * h * w, C))  # (B, L, F)
        q = self.q(self.cls.expand(B, -1, -1))  # (B, 1, F)
        k, v = self.kv(t).chunk(2, dim=-1)  # (B, L, F) each
        y = F.scaled_dot_product_attention(q, k, v)  # (B, 1, F)
        return self.proj(y)[:, 0]  # (B, F)
