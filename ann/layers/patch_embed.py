"""Local spatial encoder: one learnable conv cutting a map into a grid x grid of patches.

Any input size works: the map is zero-padded (split evenly between both ends) up to the
next multiple of `grid` per side, then a conv with kernel = stride = padded size / grid
cuts it into exactly grid x grid non-overlapping patches covering every pixel (the
padding is at most grid - 1 pixels per side; with grid 4 every patch holds real pixels
once a side has >= 6 pixels or exactly 4). Sizes are fixed at
construction (kernel and padding are computed from them), so nothing is inferred at the
first call. At 224x224 with grid 4 this is the plain 56x56-patch embedding, no padding.

Because the patches do not overlap, the conv is computed as its exact equivalent: a
reshape into patches and one matmul with the conv's weight (1.5-3x faster than
``Conv2d`` for forward + backward on CPU here; ``benchmarks/ann_throughput.py``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def patch_geometry(size: int, grid: int) -> tuple[int, int]:
    """(kernel = stride, zero padding) cutting `size` pixels into `grid` patches."""
    k = math.ceil(size / grid)
    return k, k * grid - size


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, size: tuple[int, int], grid: int, dim: int,
                 norm: bool = False):
        super().__init__()
        self.norm = norm  # standardise each map (all its channels and pixels) first
        (kh, ph), (kw, pw) = patch_geometry(size[0], grid), patch_geometry(size[1], grid)
        self.size, self.grid, self.kernel = tuple(size), grid, (kh, kw)
        self.pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)  # left, right, top, bottom
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=(kh, kw), stride=(kh, kw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"patch embedding built for maps of {self.size}, got "
                             f"{tuple(x.shape[-2:])}")
        B, C = x.shape[:2]
        if self.norm:
            x = F.group_norm(x, 1)  # (B, C, H, W), zero mean and unit variance per map
        (kh, kw), g = self.kernel, self.grid
        x = F.pad(x, self.pad)  # (B, C, g*kh, g*kw)
        patches = x.reshape(B, C, g, kh, g, kw).permute(0, 2, 4, 1, 3, 5)  # (B, g, g, C, kh, kw)
        patches = patches.reshape(B, g * g, C * kh * kw)  # (B, N, C*kh*kw), row-major grid
        return F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)  # (B, N, D)
