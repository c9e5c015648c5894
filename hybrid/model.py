"""The composed hybrid model: two STMs (spiking partition, ``neuro``) turn the MV and
residual P-frame sequences into membrane-potential maps, which go with the I-frames
into the dense partition (``ann``)::

    iframe   (B, S, 3, H, W)      ------------------------------------------> DenseModel -> logits
    mv       (B, S, T, 2, H, W) -> STM_mv  -> v (B, S, C, h, w) -----------/
    residual (B, S, T, 3, H, W) -> STM_res -> v (B, S, C, h, w) ----------/

One :class:`HybridConfig` names everything. The partition boundary is
:class:`deploy.artifact.bridge.SpikingBranch` (``stm_mv``, ``stm_res``): ``forward_spiking`` is the
spiking partition, ``dense`` the dense one; ``hybrid deploy`` cuts there, and the
runtime converts between the two with the same bridge code.

The paper's STM ablations (poster, STM table) are ``HybridConfig.temporal``:
``"stm"`` (one STM per modality), ``"common"`` (one STM for MV and residual: a
per-modality first conv-LIF layer, since the inputs differ (2 MV vs 3 residual channels,
different units), and the two spiking layers shared), ``"lstm"`` (a dense ConvLSTM,
:mod:`ann.convlstm`, per modality) and ``"none"`` (the GOP's last accumulated P-frame goes
to the patch embedding directly); the fixed-threshold-and-leak STM is
``stm={"learn_neuron": False}``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from torch import nn

from ann.config import MODALITIES, VARIANTS, DenseConfig
from ann.convlstm import ConvLSTM, ConvLSTMGeometry
from ann.counting import Component
from ann.counting import count as dense_count
from ann.model import DenseModel
from deploy.artifact.bridge import SpikingBranch
from hybrid.video.reader import Reads
from neuro.stm import STM, STMConfig

# STMConfig overrides for CoViAR-normalised inputs (MV in [-0.5, 0.5], residuals within
# about +-2.2): a larger initial weight scale keeps enough neurons spiking from the first
# step (with STMConfig's default 3, the MV branch fired ~2 % of its first layer and the
# model learned motion several times slower on the synthetic set), and 6 fractional input
# bits give fixed point a 1/64 step (0.6 px of MV) instead of 1/8.
STM_DEFAULTS = {"weight_scale": 10.0, "input_frac_bits": 6}

# STM strides per dense variant: the one place the STM map size is decided. The paper's
# 224 px crops with 56x56 STM maps (the size its 83.41 M parameters imply; docs/model.md,
# "Geometry") need a total stride of 4: base and large stride their first two layers.
# MV, residual and I-frame crops stay one size (one crop box, one flip, no resampling of
# motion vectors). tiny keeps the stride 2 its measured demo accuracy was trained with.
STM_STRIDES = {"tiny": (2, 1, 1), "base": (2, 2, 1), "large": (2, 2, 1)}

# what turns each modality's P-frame sequence into the dense partition's input (ablations)
TEMPORAL = ("stm", "common", "lstm", "none")
SPIKING = ("stm", "common")  # the temporal modules with a spiking partition


@dataclass
class HybridConfig:
    variant: str = "tiny"            # dense-partition variant, a key of ann.config.VARIANTS
    num_classes: int = 8             # classifier outputs
    segments: int = 3                # TSN segments per clip (one GOP each)
    timesteps: int = 11              # P-frames per GOP = STM timesteps
    size: tuple[int, int] = (56, 56)  # (H, W) of the I-frame, MV and residual crops
    quant: str = "float"             # STM numerics: "float" (fast) or "qat" (Loihi fixed point)
    modalities: tuple[str, ...] = MODALITIES  # any non-empty subset of ("i", "mv", "r")
    # STMConfig overrides (both STMs); the variant's STM_STRIDES are filled in when absent
    stm: dict = field(default_factory=lambda: dict(STM_DEFAULTS))
    dense: dict = field(default_factory=dict)  # DenseConfig overrides (ablation switches)
    # temporal module per MV / residual sequence, one of TEMPORAL: "stm" an STM each,
    # "common" one STM shared by both (per-modality first layer), "lstm" a ConvLSTM each,
    # "none" the last accumulated P-frame straight to the patch embedding
    temporal: str = "stm"

    def __post_init__(self):
        self.size = tuple(int(v) for v in self.size)
        self.modalities = tuple(self.modalities)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} not in {sorted(VARIANTS)}")
        if not (self.modalities and set(self.modalities) <= set(MODALITIES)):
            raise ValueError(f"modalities {self.modalities} must be a non-empty subset of "
                             f"{MODALITIES}")
        if not (self.segments >= 1 and self.timesteps >= 1):
            raise ValueError("segments and timesteps must be >= 1")
        if not (len(self.size) == 2 and min(self.size) >= 1):
            raise ValueError(f"size must be (H, W), got {self.size}")
        if self.temporal not in TEMPORAL:
            raise ValueError(f"temporal {self.temporal!r} not in {TEMPORAL}")
        # written out, so a checkpoint's config names its STM geometry explicitly
        self.stm = {"strides": STM_STRIDES[self.variant], **self.stm}

    def stm_config(self, in_channels: int) -> STMConfig:
        return STMConfig(in_channels=in_channels, quant=self.quant, **self.stm)

    def stm_input_size(self) -> tuple[int, int]:
        """(H, W) of the MV and residual frames each STM sees: the crop itself."""
        return self.size

    @property
    def spiking(self) -> bool:
        """Whether the MV / residual modules are STMs (a spiking partition)."""
        return self.temporal in SPIKING

    def lstm_geometry(self, in_channels: int) -> ConvLSTMGeometry:
        """The ConvLSTM standing in for the STM (``temporal="lstm"``): the STM's last width
        and total stride, so its output map has the STM's size."""
        s = self.stm_config(in_channels)
        stride = s.strides[0] * s.strides[1] * s.strides[2]
        return ConvLSTMGeometry(in_channels, s.widths[-1], stride, self.stm_input_size())

    def stm_output_size(self) -> tuple[int, int]:
        """(h, w) of the STMs' membrane-potential maps (the ConvLSTM's hidden state; the
        P-frame itself without STM), the dense partition's stm_size."""
        if self.temporal == "none":
            return self.stm_input_size()
        if self.temporal == "lstm":
            return self.lstm_geometry(2).out_hw
        return self.stm_config(2).layer_sizes(*self.stm_input_size())[-1]

    def reads(self) -> Reads:
        """What the model reads of each sampled GOP (besides its I-frame): the MV and
        residual of every P-frame (its timesteps), of the last one only without a
        temporal module (``x[:, :, -1]`` in :class:`LastPFrame`), nothing of a modality
        left out: the reader need do no other work (:class:`hybrid.video.reader.Reads`)."""
        return Reads(slots=(-1,) if self.temporal == "none" else None,
                     mv="mv" in self.modalities, residual="r" in self.modalities)

    def dense_config(self) -> DenseConfig:
        """The variant, sized for this config's inputs and its STMs' output maps."""
        return dataclasses.replace(
            VARIANTS[self.variant], num_classes=self.num_classes, segments=self.segments,
            image_size=self.size, stm_size=self.stm_output_size(),
            stm_channels=self.stm_config(2).widths[-1], modalities=self.modalities,
            raw_pframes=self.temporal == "none", **self.dense)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HybridConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if not (not unknown):
            raise ValueError(f"unknown HybridConfig fields {sorted(unknown)}")
        return cls(**d)


class _NoSTM(nn.Module):
    """Stands in for the STM of a modality the config leaves out."""

    def forward(self, x, quant=None, return_spike_maps=False):
        return None, None


class LastPFrame(nn.Module):
    """No STM: (B, S, T, C, H, W) accumulated P-frames -> the last, (B, S, C, H, W), which
    accumulates the whole GOP's motion / residual (CoViAR's representation)."""

    def forward(self, x, quant=None, return_spike_maps=False):
        return x[:, :, -1], None


class LSTMBranch(nn.Module):
    """A ConvLSTM in place of the STM: (B, S, T, C, H, W) -> (B, S, hidden, h, w)."""

    def __init__(self, geo: ConvLSTMGeometry):
        super().__init__()
        self.lstm = ConvLSTM(geo)

    def forward(self, x, quant=None, return_spike_maps=False):
        B, S = x.shape[:2]
        return self.lstm(x.flatten(0, 1)).unflatten(0, (B, S)), None


def _share_spiking_layers(a: SpikingBranch, b: SpikingBranch) -> None:
    """The common STM: ``b`` uses ``a``'s second and third conv-LIF blocks (synapses and
    neurons); each keeps its own first block for its own input channels."""
    for i in (1, 2):
        b.stm.blocks[i] = a.stm.blocks[i]


class HybridModel(nn.Module):
    """The hybrid model ``cfg`` describes: an MV and a residual branch (STMs, or the
    ablations' ConvLSTM or raw last P-frame; none for a left-out modality) feeding the
    dense partition with the I-frames. The branches are the spiking partition
    (:meth:`forward_spiking`), ``dense`` the dense one."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.cfg = cfg

        def branch(channels: int) -> nn.Module:
            if cfg.temporal == "none":
                return LastPFrame()
            if cfg.temporal == "lstm":
                return LSTMBranch(cfg.lstm_geometry(channels))
            return SpikingBranch(cfg.stm_config(channels), cfg.timesteps)

        self.stm_mv = branch(2) if "mv" in cfg.modalities else _NoSTM()
        self.stm_res = branch(3) if "r" in cfg.modalities else _NoSTM()
        if cfg.temporal == "common" and {"mv", "r"} <= set(cfg.modalities):
            _share_spiking_layers(self.stm_mv, self.stm_res)
        self.dense = DenseModel(cfg.dense_config())

    def forward_spiking(self, mv, residual, quant: str | None = None):
        """The spiking partition: membrane-potential maps and per-layer spike counts
        ((B*S, T) per layer), in STM mode ``quant`` (default: the STMs' own)."""
        v_mv, out_mv = self.stm_mv(mv, quant)
        v_res, out_res = self.stm_res(residual, quant)
        return v_mv, v_res, {"mv": out_mv.spikes if out_mv else [],
                             "r": out_res.spikes if out_res else []}

    def forward(self, iframe, mv, residual, quant: str | None = None):
        """iframe (B, S, 3, H, W), mv (B, S, T, 2, H, W), residual (B, S, T, 3, H, W)
        -> logits (B, num_classes). Left-out modalities may be None. ``quant``: the STMs'
        numeric mode for this call ("float" or "qat"; default: ``cfg.quant``)."""
        v_mv, v_res, _ = self.forward_spiking(mv, residual, quant)
        iframe = iframe if "i" in self.cfg.modalities else None
        return self.dense(iframe, v_mv, v_res)


def count(cfg: HybridConfig) -> tuple[list[Component], dict[str, int]]:
    """Parameters and MACs per video of ``HybridModel(cfg)``, per component: a row per
    STM (its parameters, and the MACs of its first layer, which sees analog MV/residual
    values, over S segments x T steps), then the dense partition's rows
    (:func:`ann.counting.count`). Also returns, per STM, the dense conv operations of its
    two spiking layers at firing rate 1: their ACs are these times the measured rate.

    Ablations: a common STM's shared layers count their parameters once (in ``stm.mv``;
    ``stm.r`` holds its own first layer), their operations per modality; a ConvLSTM is a
    dense ``lstm.*`` row (all MACs, nothing spiking); without STM there is no such row."""
    import torch

    from deploy.energy.profiler import stm_geometry

    rows, spiking = [], {}
    steps = cfg.segments * cfg.timesteps
    mods = [(m, c) for m, c in (("mv", 2), ("r", 3)) if m in cfg.modalities]
    for k, (m, c_in) in enumerate(mods):
        if cfg.temporal == "lstm":
            geo = cfg.lstm_geometry(c_in)
            rows.append(Component(f"lstm.{m}", geo.params, geo.macs_per_step * steps))
            continue
        if cfg.temporal == "none":
            continue
        with torch.device("meta"):
            blocks = STM(cfg.stm_config(c_in)).blocks
        shared = cfg.temporal == "common" and k > 0  # its layers 2-3 are counted already
        params = sum(p.numel() for b in (blocks[:1] if shared else blocks)
                     for p in b.parameters())
        layers = stm_geometry(cfg.stm_config(c_in), cfg.stm_input_size())
        rows.append(Component(f"stm.{m}", params, layers[0].dense_macs * steps))
        spiking[m] = sum(g.dense_macs for g in layers[1:]) * steps
    return rows + dense_count(cfg.dense_config()), spiking
