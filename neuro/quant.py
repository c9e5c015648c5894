"""Loihi-2 fixed-point quantisation, usable in training (straight-through) and export.

The integer semantics are those of Lava's bit-accurate LIF
(``lava.proc.lif.models.AbstractPyLifModelFixed``) and fixed-point ``Conv``
(``lava.proc.conv.models.PyConvModelFixed``):

- weights: 8-bit signed mantissa ``m`` with a per-layer power-of-two exponent ``e``;
  the float weight is ``m * 2**e``; Lava's Conv gets ``m`` (its model ignores
  ``weight_exp``; the exponent is folded into the layer's voltage scale instead);
- the synaptic sum ``a = sum(m * x)`` wraps to 24 bit (``signed_clamp``), the neuron
  MSB-aligns it, ``u = a << 6``, and wraps ``u`` to 24 bit;
- 12-bit decays: ``v <- sign(v) * ((|v| * (4096 - dv)) >> 12)``, ``dv`` in [0, 4095];
- 24-bit voltage, clipped to +-(2**23 - 1);
- threshold: 17-bit mantissa, effective threshold ``vth_mant << 6``.

A layer whose inputs are integer messages ``x_int = x * in_scale`` has float voltage
``v = v_int / v_scale`` with ``v_scale = 64 * in_scale / 2**e`` (``voltage_scale``).
Every rounding here is straight-through (identity gradient), so the same code trains
(quantisation-aware) and produces the integers that are exported.
"""
from __future__ import annotations

import math

import numpy as np
import torch

W_BITS = 8  # weight mantissa bits (signed)
DECAY_BITS = 12  # du, dv: unsigned 12 bit; decay unity 4096
V_BITS = 24  # u, v: signed 24 bit
VTH_BITS = 17  # threshold mantissa: unsigned 17 bit
VTH_SHIFT = 6  # effective threshold = vth_mant << 6
ACT_SHIFT = 6  # synaptic input is left-shifted by 6 in the neuron
DECAY_UNITY = 1 << DECAY_BITS
V_MAX = (1 << (V_BITS - 1)) - 1  # voltage clip
U_WRAP = 1 << (V_BITS - 1)  # current wrap bound (Lava: > 2**23 or <= -2**23 wraps once)
W_MAX = (1 << (W_BITS - 1)) - 1
VTH_MAX = (1 << VTH_BITS) - 1


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round() forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def ste_floor(x: torch.Tensor) -> torch.Tensor:
    """floor() forward, identity backward."""
    return x + (torch.floor(x) - x).detach()


def weight_exponent(w: torch.Tensor) -> int:
    """Smallest power-of-two exponent ``e`` with ``max|w| / 2**e <= 127``."""
    amax = float(w.detach().abs().max())
    if amax == 0.0:
        return 0
    return math.ceil(math.log2(amax / W_MAX))


def weight_mantissa(w: torch.Tensor, exp: int) -> torch.Tensor:
    """Signed 8-bit mantissa ``m`` (integer-valued float tensor) with ``w ~ m * 2**exp``."""
    return torch.clamp(ste_round(w / 2.0**exp), -W_MAX - 1, W_MAX)


def voltage_scale(exp: int, in_scale: float) -> float:
    """Integer voltage units per float unit for a layer (see the module docstring)."""
    return float((1 << ACT_SHIFT) * in_scale * 2.0 ** (-exp))


def decay_int(leak: torch.Tensor) -> torch.Tensor:
    """12-bit voltage decay ``dv`` (integer-valued) for a leak in [0, 1)."""
    return torch.clamp(ste_round(leak * DECAY_UNITY), 0, DECAY_UNITY - 1)


def threshold_mantissa(theta: torch.Tensor, v_scale: float) -> torch.Tensor:
    """17-bit threshold mantissa (integer-valued); effective threshold ``<< 6``."""
    return torch.clamp(ste_round(theta * v_scale / (1 << VTH_SHIFT)), 1, VTH_MAX)


def quantize_input(x: torch.Tensor, frac_bits: int, bits: int) -> torch.Tensor:
    """Graded input messages: ``round(x * 2**frac_bits)`` clamped to signed ``bits``."""
    lim = 1 << (bits - 1)
    return torch.clamp(ste_round(x * 2.0**frac_bits), -lim, lim - 1)


def quantize_input_np(x: np.ndarray, frac_bits: int, bits: int) -> np.ndarray:
    """:func:`quantize_input` for numpy arrays (the Lava side's graded messages)."""
    lim = 1 << (bits - 1)
    return np.clip(np.round(x * 2.0**frac_bits), -lim, lim - 1)


def wrap_synapse(a: torch.Tensor) -> torch.Tensor:
    """Lava Conv's 24-bit ``signed_clamp`` (a modulo wrap) of the synaptic sum."""
    base = float(1 << V_BITS)
    half = float(1 << (V_BITS - 1))
    return a + (torch.remainder(a + half, base) - half - a).detach()


def wrap_current(u: torch.Tensor) -> torch.Tensor:
    """Lava LIF's single wrap of the current into 24 bit (see AbstractPyLifModelFixed)."""
    m = float(U_WRAP)
    w = torch.where(u > m, u - 2 * m, u)
    return torch.where(w <= -m, u + 2 * m, w)


def decay_voltage(v: torch.Tensor, dv: torch.Tensor) -> torch.Tensor:
    """``sign(v) * ((|v| * (4096 - dv)) >> 12)``; float64 keeps the 36-bit product exact."""
    return torch.sign(v) * ste_floor(v.abs() * (DECAY_UNITY - dv) / DECAY_UNITY)
