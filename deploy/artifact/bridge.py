"""The bridge: the one place that converts between the spiking and the dense partition.

The spiking partition (one STM per compressed modality) runs each TSN segment's P-frame
sequence as one sequence of ``T`` timesteps; the dense partition takes, per segment, the
last spiking layer's analog membrane potential after the last step. The bridge owns

- the layouts: a clip's ``(B, S, T, C, H, W)`` P-frames -> the STM's ``(B*S, C, H, W, T)``
  sequences (:func:`to_stm`), and the STM's ``(B*S, C', h, w)`` voltages -> the dense
  input ``(B, S, C', h, w)`` (:func:`to_dense`);
- the fixed-point scale: Lava's integer voltage -> the dense input,
  ``v = v_int / v_scale`` (:meth:`BridgeSpec.from_lava`; the torch ``qat`` STM applies the
  same division to its integer-valued voltage);
- what it carries: ``segments x C' x h x w`` voltages of ``value_bits`` bits a video.

:class:`SpikingBranch` (an STM behind the bridge) is what ``hybrid.model.HybridModel``
trains, what ``hybrid stm verify`` checks and what the runtime's ``--compare`` runs, so
training, verification and deployment share one boundary.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from neuro.quant import V_BITS
from neuro.stm import STM, STMConfig, STMOutput

# dense-partition input name of each STM modality (as ann.onnx_export.INPUT_NAMES)
DENSE_INPUTS = {"mv": "mv", "r": "residual"}


def to_stm(x: torch.Tensor) -> torch.Tensor:
    """(B, S, T, C, H, W) P-frames -> (B*S, C, H, W, T) STM sequences."""
    if x.ndim != 6:
        raise ValueError(f"bridge: expected (B, S, T, C, H, W) P-frames, got {tuple(x.shape)}")
    B, S, T, C, H, W = x.shape
    return x.reshape(B * S, T, C, H, W).permute(0, 2, 3, 4, 1)


def to_dense(v, batch: int):
    """(B*S, C', h, w) last-layer voltages -> (B, S, C', h, w) dense input (torch or numpy)."""
    if v.shape[0] % batch != 0:
        raise ValueError(f"bridge: {v.shape[0]} sequences do not split into {batch} clips")
    return v.reshape(batch, v.shape[0] // batch, *v.shape[1:])


@dataclass(frozen=True)
class BridgeSpec:
    """One spiking output feeding one dense input."""

    modality: str  # "mv" or "r": the STM branch
    source: str  # the spiking output: "<STM file>:layer/3/v" (last layer, after step T)
    target: str  # the dense input it feeds ("mv" or "residual", ONNX input name)
    segments: int  # S: sequences per video
    channels: int  # C' of the last spiking layer
    height: int  # h
    width: int  # w
    v_scale: float  # dense input = Lava integer voltage / v_scale
    value_bits: int = V_BITS  # width of one carried voltage (Lava's 24-bit v)

    def __post_init__(self):
        if self.modality not in DENSE_INPUTS:
            raise ValueError(f"bridge modality must be one of {sorted(DENSE_INPUTS)}, got "
                             f"{self.modality!r}")
        if self.target != DENSE_INPUTS[self.modality]:
            raise ValueError(f"bridge: modality {self.modality!r} feeds "
                             f"{DENSE_INPUTS[self.modality]!r}, "
            f"not {self.target!r}")
        for name in ("segments", "channels", "height", "width", "value_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"bridge {self.modality} {name} {v!r} must be a whole "
                                 "number >= 1")
        v = self.v_scale
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (
                math.isfinite(v) and v > 0):
            raise ValueError(f"bridge {self.modality} v_scale {v!r} must be a finite number "
                             "> 0")

    @property
    def layout(self) -> tuple[int, int, int, int]:
        """(segments, channels, H, W) of one video's dense input."""
        return (self.segments, self.channels, self.height, self.width)

    @property
    def values_per_video(self) -> int:
        return math.prod(self.layout)

    @property
    def bytes_per_video(self) -> int:
        """Bytes the bridge carries a video, voltages packed at ``value_bits``."""
        return math.ceil(self.values_per_video * self.value_bits / 8)

    def from_lava(self, v_int: np.ndarray, batch: int = 1) -> np.ndarray:
        """(B*S, C', h, w) Lava integer voltages -> (B, S, C', h, w) float32 dense input."""
        if v_int.shape[1:] != self.layout[1:]:
            raise ValueError(f"bridge {self.modality}: spiking output {v_int.shape[1:]}, spec "
                             f"{self.layout[1:]}")
        v = (np.asarray(v_int, np.float64) / self.v_scale).astype(np.float32)
        return to_dense(v, batch)

    def to_dict(self) -> dict:
        return {**asdict(self), "layout": ["segments", "channels", "H", "W"],
                "bytes_per_video": self.bytes_per_video}

    @classmethod
    def from_dict(cls, d: dict) -> BridgeSpec:
        return cls(**{k: v for k, v in d.items() if k not in ("layout", "bytes_per_video")})


class SpikingBranch(nn.Module):
    """An STM behind the bridge: (B, S, T, C, H, W) P-frames -> (B, S, C', h, w) voltages
    and the STM's output (per-layer spike counts (B*S, T), optionally spike maps)."""

    def __init__(self, cfg: STMConfig, timesteps: int):
        super().__init__()
        self.stm = STM(cfg)
        self.timesteps = timesteps

    def forward(self, x: torch.Tensor, quant: str | None = None,
                return_spike_maps: bool = False) -> tuple[torch.Tensor, STMOutput]:
        if not (x.ndim == 6 and x.shape[2] == self.timesteps):
            raise ValueError(f"STM branch expects (B, S, {self.timesteps}, C, H, W) P-frames, got "
            f"{tuple(x.shape)}")
        out = self.stm(to_stm(x), quant=quant, return_spike_maps=return_spike_maps)
        return to_dense(out.v, x.shape[0]), out
