"""One modality's branch of the Multi-Modal Mixer (the sum over modalities is in the model).

Conv Folding (3x3 conv + ReLU) on the folded transformer tokens, plus a learnable 1x1
conv skip from the initial feature maps (the patch embedding's output), then Conv Fusion
(two 3x3 convs, each + LeakyReLU).
"""
from __future__ import annotations

import torch
from torch import nn


class ZeroSkip(nn.Module):
    """The skip switched off: contributes nothing (keeps MixerBranch.forward branch-free)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(())


class MixerBranch(nn.Module):
    def __init__(self, dim: int, filters: int, skip: bool = True):
        super().__init__()
        self.fold = nn.Sequential(nn.Conv2d(dim, filters, 3, padding=1), nn.ReLU())
        self.skip = nn.Conv2d(dim, filters, 1) if skip else ZeroSkip()
        self.fusion = nn.Sequential(
            nn.Conv2d(filters, filters, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(filters, filters, 3, padding=1), nn.LeakyReLU(0.2),
        )

    def forward(self, tokens_map: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        # tokens_map, initial: (B, D, g, g) -> (B, F, g, g)
        return self.fusion(self.fold(tokens_map) + self.skip(initial))


class ProjectBranch(nn.Module):
    """The mixer switched off: a 1x1 conv D -> F so the decoder sees F channels."""

    def __init__(self, dim: int, filters: int):
        super().__init__()
        self.proj = nn.Conv2d(dim, filters, 1)

    def forward(self, tokens_map: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        return self.proj(tokens_map)  # (B, F, g, g)
