"""The STM neuron: a current-free LIF with soft (subtractive) reset, in SLAYER's style.

- dynamics are a pure function (:func:`lif_dynamics`), run over the whole sequence;
- threshold and leak are learned per layer (or fixed at their initial values, the
  paper's "STM (fixed v_th, lambda)" ablation: ``learn=False``) and kept in their valid
  ranges by their parametrisation (threshold = ``min_threshold + softplus(raw)``,
  leak = ``sigmoid(raw)``);
- spikes use an arctan surrogate gradient of configurable width;
- state starts at zero for every sequence (the forward call is one sequence);
- ``device_params`` names the Loihi-2 / netx parameters in one place.

Float dynamics, one step (``a`` = synaptic input, ``theta`` threshold, ``leak`` in [0,1)):
``v = (1 - leak) * v + a; s = v > theta; v = v - theta * s``.
The fixed-point version is Lava's bit-accurate LIF with current decay 1 (``du = 4095``,
so ``u = a << 6``), voltage decay ``dv``, and the reset replaced by a subtraction of the
effective threshold (see :mod:`neuro.quant`, :mod:`neuro.lava_procs.soft_lif`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from neuro import quant


class ATanSpike(torch.autograd.Function):
    """Heaviside forward; backward ``1 / (width * (1 + (pi * z / width)**2))``
    (derivative of ``atan(pi * z / width) / pi``)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, width: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.width = width
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (z,) = ctx.saved_tensors
        w = ctx.width
        return grad / (w * (1 + (math.pi * z / w) ** 2)), None


def lif_dynamics(
    a: torch.Tensor, threshold: torch.Tensor, decay: torch.Tensor, width: float,
    v_scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the soft-reset LIF over a sequence ``a`` (..., T); state starts at 0.

    Float mode (``v_scale is None``): ``decay`` is the leak in [0, 1), ``threshold`` in
    float units. Fixed-point mode: ``a`` is the wrapped current ``u`` in integer units,
    ``threshold`` the effective integer threshold (``vth_mant << 6``), ``decay`` the
    12-bit ``dv``; the surrogate sees ``(v - threshold) / v_scale`` (float units).
    Returns ``(spikes, v)``, both (..., T); ``v`` is the post-reset voltage.
    """
    a_t = a.movedim(-1, 0).contiguous()  # (T, ...): contiguous per-step slices (fast)
    v = torch.zeros_like(a_t[0])
    spikes, vs = [], []
    for t in range(a_t.shape[0]):
        if v_scale is None:
            v = (1 - decay) * v + a_t[t]
            s = ATanSpike.apply(v - threshold, width)
        else:
            v = torch.clamp(quant.decay_voltage(v, decay) + a_t[t], -quant.V_MAX, quant.V_MAX)
            s = ATanSpike.apply((v - threshold) / v_scale, width)
        v = v - threshold * s
        spikes.append(s)
        vs.append(v)
    return torch.stack(spikes, -1), torch.stack(vs, -1)


def _inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class SoftLIF(nn.Module):
    """Per-layer learnable (``learn=True``) or fixed threshold and leak; soft reset;
    arctan surrogate. Fixed ones stay parameters (``requires_grad=False``), so a state
    dict and an export look the same either way."""

    def __init__(self, threshold: float = 1.0, leak: float = 0.25, width: float = 0.5,
                 min_threshold: float = 0.05, learn: bool = True) -> None:
        super().__init__()
        if threshold <= min_threshold:
            raise ValueError(f"threshold {threshold} must exceed {min_threshold}")
        if not (0.0 < leak < 1.0):
            raise ValueError(f"leak {leak} must lie in (0, 1)")
        if width <= 0:
            raise ValueError(f"surrogate width {width} must be positive")
        self.min_threshold = min_threshold
        self.width = width
        self.threshold_raw = nn.Parameter(torch.tensor(_inv_softplus(threshold - min_threshold)))
        self.leak_raw = nn.Parameter(torch.tensor(math.log(leak / (1 - leak))))
        self.threshold_raw.requires_grad_(learn)
        self.leak_raw.requires_grad_(learn)

    @property
    def threshold(self) -> torch.Tensor:
        return self.min_threshold + nn.functional.softplus(self.threshold_raw)

    @property
    def leak(self) -> torch.Tensor:
        return torch.sigmoid(self.leak_raw)

    def forward(self, a: torch.Tensor, v_scale: float | None = None):
        """``a`` (B, C, H, W, T) float synaptic input, or (fixed point) integer messages'
        synaptic sums when ``v_scale`` is given. Returns ``(spikes, v)`` with ``v`` in
        integer units in fixed-point mode."""
        if v_scale is None:
            return lif_dynamics(a, self.threshold, self.leak, self.width)
        u = quant.wrap_current(quant.wrap_synapse(a) * (1 << quant.ACT_SHIFT))
        vth = quant.threshold_mantissa(self.threshold, v_scale) * (1 << quant.VTH_SHIFT)
        return lif_dynamics(u, vth, quant.decay_int(self.leak), self.width, v_scale)

    def device_params(self, v_scale: float) -> dict:
        """Loihi-2 / netx neuron parameters (netx 'CUBA' schema plus soft-reset extras)."""
        with torch.no_grad():
            return {
                "type": "CUBA",
                "iDecay": quant.DECAY_UNITY,  # current decay 1: u = a << 6 (netx du = iDecay-1)
                "vDecay": int(quant.decay_int(self.leak)),
                "vThMant": int(quant.threshold_mantissa(self.threshold, v_scale)),
                "refDelay": 1,
                "gradedSpike": False,
                "resetMode": "soft",  # extra: v -= vThMant << 6 on a spike
                "vScale": float(v_scale),  # extra: float v = Lava v / vScale
            }
