"""Self-supervised pretext heads (IMRNet, Yu et al., ICLR 2021, "Self-Supervised Learning
of Compressed Video Representations"): small dense classifiers on the backbone's pooled
features, trained during pretraining and dropped afterwards.

- :class:`MLPHead`: IMRNet's "2-layer MLP with a softmax classifier" (Linear, ReLU,
  Linear; the softmax is in the cross-entropy loss).
- :class:`PMSPHead`: one MLP per pyramid level ``(grid, chunks)``, each predicting, for
  every temporal chunk, which of the ``grid x grid`` cells holds the highest motion
  energy: logits (B, chunks, grid**2).
- the CTP head is an :class:`MLPHead` with one output per correspondence type.
"""
from __future__ import annotations

import torch
from torch import nn


class MLPHead(nn.Module):
    """(B, in_dim) -> (B, out_dim): Linear -> ReLU -> Linear."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        if not (in_dim >= 1 and hidden >= 1 and out_dim >= 2):
            raise ValueError(f"MLPHead needs in_dim, hidden >= 1 and out_dim >= 2 classes, got "
            f"{in_dim}, {hidden}, {out_dim}")
        self.fc1 = nn.Linear(in_dim, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PMSPHead(nn.Module):
    """Pyramidal motion statistics prediction: ``levels`` = ((grid, chunks), ...);
    ``forward(features (B, D))`` -> one logits tensor (B, chunks, grid**2) per level."""

    def __init__(self, in_dim: int, hidden: int, levels: tuple[tuple[int, int], ...]):
        super().__init__()
        if not levels:
            raise ValueError("PMSPHead needs at least one pyramid level")
        for g, c in levels:
            if not (g >= 2 and c >= 1):
                raise ValueError(f"a level needs grid >= 2 and chunks >= 1, got {(g, c)}")
        self.levels = tuple((int(g), int(c)) for g, c in levels)
        self.mlps = nn.ModuleList(MLPHead(in_dim, hidden, c * g * g) for g, c in self.levels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [mlp(x).unflatten(1, (c, g * g))  # (B, chunks, grid**2)
                for mlp, (g, c) in zip(self.mlps, self.levels)]
