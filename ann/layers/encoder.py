"""Global spatial encoders over the tokens of all modalities: the paper's unified
transformer and its two ablations. All map (B, M, L, D) -> (B, M, L, D), with M
modalities of L = S*N tokens each."""
from __future__ import annotations

import torch
from torch import nn

from ann.layers.block import Block, CrossBlock


class UnifiedEncoder(nn.Module):
    """One ViT over the concatenated tokens of all modalities and segments."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, M, L, D = x.shape
        return self.norm(self.blocks(x.reshape(B, M * L, D))).reshape(B, M, L, D)


class SeparateEncoder(nn.Module):
    """One ViT per modality, each over its own S*N tokens (ablation)."""

    def __init__(self, modalities: int, dim: int, depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.encoders = nn.ModuleList(
            UnifiedEncoder(dim, depth, heads, mlp_ratio) for _ in range(modalities)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([enc(x[:, m : m + 1]) for m, enc in enumerate(self.encoders)], 1)


class CrossEncoder(nn.Module):
    """Cross-attention between modalities (ablation): in every block each modality's
    tokens query the tokens of all other modalities; weights shared across modalities."""

    def __init__(self, modalities: int, dim: int, depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        if modalities < 2:
            raise ValueError("cross-attention needs at least two modalities")
        others = [[o for o in range(modalities) if o != m] for m in range(modalities)]
        self.register_buffer("others", torch.tensor(others), persistent=False)  # (M, M-1)
        self.blocks = nn.ModuleList(CrossBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, M, L, D = x.shape
        for blk in self.blocks:
            ctx = x[:, self.others].reshape(B * M, (M - 1) * L, D)  # other modalities
            x = blk(x.reshape(B * M, L, D), ctx).reshape(B, M, L, D)
        return self.norm(x)
