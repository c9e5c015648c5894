"""The Spiking Temporal Modulator (STM): three conv-LIF blocks over the P-frame sequence.

A block is a SLAYER synapse (``slayer.synapse.Conv``, NCHWT layout, one timestep per
P-frame) followed by the project's soft-reset LIF (:mod:`neuro.neuron`). The output is
the last layer's analog membrane potential after the last step (optionally every step)
plus per-layer spike counts per timestep and, on request, the spike maps that the energy
profiler (``deploy/energy/profiler.py``) counts by exact fan-out.

Two numeric modes:

- ``"float"``: float32 dynamics, fastest, for training;
- ``"qat"``: Loihi-2 fixed point emulated exactly (float64 tensors holding integers,
  straight-through gradients): bit-exact to the Lava ``fixed_pt`` simulation of the
  exported network, and trainable (quantisation-aware).

The mode is explicit state: each call may name it (``stm(x, quant="qat")``), otherwise
the STM's own ``quant`` attribute (``STMConfig.quant`` at construction) applies; it is
never read from a config shared with other modules. The fixed-point form of a layer
(weight exponent, mantissas, voltage scale) is a pure function of its parameters,
computed in the forward that uses it (:meth:`Block.fixed_point`), not kept between calls.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuro import quant
from neuro.neuron import SoftLIF
from neuro.quant import quantize_input

from lava.lib.dl import slayer

MODES = ("float", "qat")  # the STM's numeric modes


@dataclass
class STMConfig:
    in_channels: int = 2  # 2 for motion vectors, 3 for residuals
    widths: tuple[int, int, int] = (8, 16, 16)  # output channels of the three conv-LIF layers
    kernels: tuple[int, int, int] = (3, 3, 3)  # square kernel sizes (odd; padding k // 2)
    strides: tuple[int, int, int] = (2, 1, 1)  # spatial strides; 56x56 in -> 28x28 out
    threshold: float = 1.0  # initial threshold of every layer (float units)
    leak: float = 0.25  # initial voltage leak of every layer, in (0, 1); decay = 1 - leak
    surrogate_width: float = 0.5  # width of the arctan surrogate gradient
    weight_scale: float = 3.0  # multiplies SLAYER's default init (3: every layer spikes)
    quant: str = "float"  # initial mode of an STM: "float" (fast) or "qat" (exact fixed point)
    input_frac_bits: int = 3  # fixed point: input x -> round(x * 2**bits) graded messages
    input_bits: int = 8  # fixed point: signed width of the graded input messages
    learn_neuron: bool = True  # learn threshold and leak; False: fixed at the values above

    def __post_init__(self):
        self.widths, self.kernels, self.strides = (
            tuple(int(v) for v in f) for f in (self.widths, self.kernels, self.strides))
        for name in ("widths", "kernels", "strides"):
            val = getattr(self, name)
            if len(val) != 3:
                raise ValueError(f"STMConfig.{name} needs 3 values (one per layer), got {val}")
            if not all(v > 0 for v in val):
                raise ValueError(f"STMConfig.{name} must be positive, got {val}")
        if not all(k % 2 == 1 for k in self.kernels):
            raise ValueError(f"kernels must be odd, got {self.kernels}")
        if self.in_channels not in (2, 3):
            raise ValueError(f"in_channels must be 2 (MV) or 3 (R), got {self.in_channels}")
        if self.quant not in MODES:
            raise ValueError(f"quant must be one of {MODES}, got {self.quant!r}")
        if not (1 < self.input_bits <= 24):
            raise ValueError(f"input_bits must be in 2..24, got {self.input_bits}")

    def layer_sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        """Each layer's output (H', W') for an (h, w) input (padding k // 2)."""
        sizes = []
        for k, s in zip(self.kernels, self.strides):
            h, w = (h + 2 * (k // 2) - k) // s + 1, (w + 2 * (k // 2) - k) // s + 1
            sizes.append((h, w))
        return sizes


@dataclass
class STMOutput:
    v: torch.Tensor  # (B, C_out, H', W') last layer's membrane potential after the last step
    v_seq: torch.Tensor | None  # (B, C_out, H', W', T) at every step, if requested
    spikes: list[torch.Tensor]  # per layer: (B, T) spike counts per timestep
    spike_maps: list[torch.Tensor] | None = None  # per layer (B, C, H, W, T), if requested


class Block(nn.Module):
    """SLAYER conv synapse followed by the soft-reset LIF."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, cfg: STMConfig):
        super().__init__()
        self.synapse = slayer.synapse.Conv(
            c_in, c_out, k, stride=stride, padding=k // 2, weight_scale=cfg.weight_scale)
        self.neuron = SoftLIF(cfg.threshold, cfg.leak, cfg.surrogate_width,
                              learn=cfg.learn_neuron)

    def weight_exp(self) -> int:
        """The power-of-two exponent of the 8-bit weight mantissas (fixed point)."""
        return quant.weight_exponent(self.synapse.weight)

    def fixed_point(self, in_scale: float) -> tuple[torch.Tensor, float]:
        """(integer-valued float64 weight mantissas, voltage scale) of this layer for
        inputs worth ``x / in_scale``; straight-through to the float weights."""
        exp = self.weight_exp()
        m = quant.weight_mantissa(self.synapse.weight, exp).double()
        return m, quant.voltage_scale(exp, in_scale)

    def _conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        syn = self.synapse
        return F.conv3d(x, w, None, syn.stride, syn.padding, syn.dilation, syn.groups)

    def forward(self, x: torch.Tensor, in_scale: float, mode: str):
        """x (B, C_in, H, W, T): floats (``mode="float"``), or (``"qat"``) integer
        messages worth ``x / in_scale``. Returns (spikes, v, v_scale or None)."""
        if mode == "float":
            s, v = self.neuron(self._conv(x, self.synapse.weight))
            return s, v, None
        w, v_scale = self.fixed_point(in_scale)
        s, v = self.neuron(self._conv(x, w), v_scale)  # (B, C_out, H', W', T)
        return s, v, v_scale


class STM(nn.Module):
    """Three conv-LIF blocks. ``forward(x, quant=None)``: x float32 (B, C_in, H, W, T)
    -> STMOutput, in mode ``quant`` (default: this STM's ``quant`` attribute)."""

    def __init__(self, cfg: STMConfig):
        super().__init__()
        self.cfg = cfg
        self.quant = cfg.quant  # this STM's default numeric mode
        chans = (cfg.in_channels, *cfg.widths)
        self.blocks = nn.ModuleList(
            Block(chans[i], chans[i + 1], cfg.kernels[i], cfg.strides[i], cfg) for i in range(3))

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        """Output spatial size for an (h, w) input."""
        return self.cfg.layer_sizes(h, w)[-1]

    @property
    def in_scale(self) -> float:
        return float(2 ** self.cfg.input_frac_bits)

    def forward(self, x: torch.Tensor, return_v_seq: bool = False,
                return_spike_maps: bool = False, quant: str | None = None) -> STMOutput:
        mode = self.quant if quant is None else quant
        if mode not in MODES:
            raise ValueError(f"quant must be one of {MODES}, got {mode!r}")
        if not (x.ndim == 5 and x.shape[1] == self.cfg.in_channels):
            raise ValueError(f"STM expects (B, {self.cfg.in_channels}, H, W, T), got "
                             f"{tuple(x.shape)}")
        if mode == "float":
            h, scale = x, 1.0
        else:
            h = quantize_input(x.double(), self.cfg.input_frac_bits, self.cfg.input_bits)
            scale = self.in_scale
        counts, maps = [], []
        for blk in self.blocks:
            h, v, v_scale = blk(h, scale, mode)  # h: spikes (B, C, H', W', T)
            counts.append(h.detach().sum(dim=(1, 2, 3)))  # (B, T)
            maps.append(h.detach())
            scale = 1.0  # spikes are unit messages
        if v_scale is not None:
            v = (v / v_scale).float()
        return STMOutput(v=v[..., -1], v_seq=v if return_v_seq else None, spikes=counts,
                         spike_maps=maps if return_spike_maps else None)
