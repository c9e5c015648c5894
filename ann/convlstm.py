"""A ConvLSTM (Shi et al., NeurIPS 2015) over a P-frame sequence: the dense stand-in for
the STM in the paper's "STM -> LSTM" ablation (poster, STM table).

One layer, peephole-free: per step ``gates = conv_x(x_t) + conv_h(h_{t-1})`` (i, f, g, o),
``c = f * c + i * tanh(g)``, ``h = o * tanh(c)``; state starts at zero. ``conv_x`` strides
by the STM's total stride and both convs are 3x3 (padding 1), so the final hidden state
has the STM's output size ceil(H / stride) and, with ``hidden`` = the STM's last width,
feeds the same dense partition. Dense (MACs), so not deployable to Lava.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

KERNEL = 3


@dataclass(frozen=True)
class ConvLSTMGeometry:
    c_in: int  # input channels (2 MV, 3 residual)
    hidden: int  # hidden (= output) channels
    stride: int  # stride of the input conv
    in_hw: tuple[int, int]  # (H, W) of the input frames

    @property
    def out_hw(self) -> tuple[int, int]:
        return tuple((n + 2 * (KERNEL // 2) - KERNEL) // self.stride + 1 for n in self.in_hw)

    @property
    def params(self) -> int:
        g = 4 * self.hidden
        return self.c_in * g * KERNEL ** 2 + g + self.hidden * g * KERNEL ** 2

    @property
    def macs_per_step(self) -> int:
        """MACs of one timestep of one sequence: both gate convs (the gating's element-wise
        products are not counted, as norms and activations elsewhere)."""
        h, w = self.out_hw
        return h * w * 4 * self.hidden * (self.c_in + self.hidden) * KERNEL ** 2


class ConvLSTM(nn.Module):
    """``forward(x)``: x (N, T, C, H, W) -> final hidden state (N, hidden, h, w)."""

    def __init__(self, geo: ConvLSTMGeometry):
        super().__init__()
        self.geo = geo
        p = KERNEL // 2
        self.conv_x = nn.Conv2d(geo.c_in, 4 * geo.hidden, KERNEL, geo.stride, p)
        self.conv_h = nn.Conv2d(geo.hidden, 4 * geo.hidden, KERNEL, 1, p, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (x.ndim == 5 and x.shape[2] == self.geo.c_in):
            raise ValueError(f"ConvLSTM expects (N, T, {self.geo.c_in}, H, W), got "
                             f"{tuple(x.shape)}")
        N, T = x.shape[:2]
        gx = self.conv_x(x.flatten(0, 1)).unflatten(0, (N, T))  # (N, T, 4h, h', w')
        h = torch.zeros_like(gx[:, 0, : self.geo.hidden])  # (N, hidden, h', w')
        c = torch.zeros_like(h)
        for t in range(T):
            i, f, g, o = (gx[:, t] + self.conv_h(h)).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return h
