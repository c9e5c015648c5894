"""ESRGAN's Residual-in-Residual Dense Block (Wang et al., ECCV-W 2018)."""
from __future__ import annotations

import torch
from torch import nn


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing all earlier outputs; residual scaled by 0.2."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1) for i in range(5)
        )
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, nf, h, w)
        feats = [x]
        for conv in self.convs[:4]:
            feats.append(self.act(conv(torch.cat(feats, 1))))  # (B, gc, h, w)
        return x + 0.2 * self.convs[4](torch.cat(feats, 1))


class RRDB(nn.Module):
    """Three dense blocks with an outer residual scaled by 0.2."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualDenseBlock(nf, gc) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, nf, h, w)
        return x + 0.2 * self.blocks(x)
