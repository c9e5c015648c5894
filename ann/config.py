"""Configuration of the dense partition: one dataclass, a dict of variants.

Use ``dataclasses.replace(VARIANTS['tiny'], num_classes=10, stm_channels=8)`` to adapt a
variant; ``__post_init__`` checks the combination. The composed model
(``hybrid.model.HybridConfig.dense_config``) replaces the sizes (``image_size``,
``stm_size``, ``stm_channels``, ``segments``, ``num_classes``) with those of its crops and
STMs; the values below are for the dense partition on its own.
"""
from __future__ import annotations

from dataclasses import dataclass

MODALITIES = ("i", "mv", "r")  # I-frame, motion-vector STM, residual STM (this order)
ENCODERS = ("unified", "separate", "cross")
POOLINGS = ("gap", "cls")
PFRAME_CHANNELS = {"mv": 2, "r": 3}  # channels of an (accumulated) P-frame per modality


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"DenseConfig: {message}")


@dataclass(frozen=True)
class DenseConfig:
    num_classes: int = 101  # classifier outputs (UCF-101)
    segments: int = 8  # S: TSN segments per video, one (I, MV, R) triplet each
    image_size: tuple[int, int] = (224, 224)  # (H, W) of the RGB I-frame input
    stm_size: tuple[int, int] = (56, 56)  # (h, w) of the STM membrane-potential maps
    stm_channels: int = 16  # C: channels of each STM output (MV and R branches alike)
    modalities: tuple[str, ...] = MODALITIES  # non-empty subset of ('i', 'mv', 'r')
    grid: int = 4  # patches per side of every modality's map: N = grid**2 = 16 tokens
    width: int = 696  # D: transformer width = patch-embedding channels
    depth: int = 12  # transformer blocks (per encoder when encoder='separate')
    heads: int = 12  # attention heads; width % heads == 0
    mlp_ratio: float = 4.0  # hidden width of the transformer MLP = mlp_ratio * width
    filters: int = 64  # F: channels of the mixer, RRDB and classifier input
    rrdb_growth: int = 32  # growth channels of the RRDB's dense blocks (ESRGAN: 32)
    encoder: str = "unified"  # 'unified' | 'separate' per modality | 'cross' (modalities)
    pooling: str = "gap"  # 'gap' global average pool | 'cls' learned class-token pooling
    mixer: bool = True  # Multi-Modal Mixer on; off: a 1x1 conv D->F per modality
    skips: bool = True  # the mixer's learnable conv skip from the initial feature maps
    rrdb: bool = True  # residual-in-residual dense block before pooling; off: identity
    # 'mv' / 'r' inputs are the accumulated P-frames themselves (2 / 3 channels at
    # stm_size), not STM maps: the paper's "W/o STM" ablation
    raw_pframes: bool = False
    # standardise each segment's STM (or ConvLSTM) map per clip, over its channels and
    # positions (GroupNorm with one group, no parameters), before its patch embedding:
    # the bridge carries membrane potentials at ~6x the I-frame input's RMS, and the
    # embedding then starts every modality at one scale (docs/benchmarks.md, "STM training
    # diagnostics")
    stm_norm: bool = False

    def __post_init__(self):
        mods = tuple(self.modalities)
        _require(bool(mods), "modalities must be a non-empty subset of ('i', 'mv', 'r')")
        _require(set(mods) <= set(MODALITIES),
                 f"unknown modalities {sorted(set(mods) - set(MODALITIES))}")
        _require(len(set(mods)) == len(mods), f"duplicate modalities in {mods}")
        # canonical order, so ('r', 'i') and ('i', 'r') build the same model
        object.__setattr__(self, "modalities", tuple(m for m in MODALITIES if m in mods))
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        object.__setattr__(self, "stm_size", tuple(int(v) for v in self.stm_size))
        _require(self.encoder in ENCODERS, f"encoder {self.encoder!r} not in {ENCODERS}")
        _require(self.pooling in POOLINGS, f"pooling {self.pooling!r} not in {POOLINGS}")
        _require(self.encoder != "cross" or len(self.modalities) >= 2,
                 "encoder='cross' attends between modalities: it needs at least two, "
                 f"got {self.modalities}")
        for name in ("num_classes", "segments", "stm_channels", "grid", "width", "depth",
                     "heads", "filters", "rrdb_growth"):
            _require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _require(self.width % self.heads == 0,
                 f"width {self.width} is not divisible by heads {self.heads}")
        _require(self.mlp_ratio > 0, f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        for name in ("image_size", "stm_size"):
            v = getattr(self, name)
            _require(len(v) == 2 and min(v) >= 1, f"{name} must be two sizes >= 1, got {v}")

    @property
    def tokens(self) -> int:
        """N: tokens per modality and segment."""
        return self.grid * self.grid

    def in_shape(self, modality: str) -> tuple[int, int, int]:
        """(channels, height, width) of one segment's input of `modality`."""
        if modality == "i":
            return (3, *self.image_size)
        if self.raw_pframes:
            return (PFRAME_CHANNELS[modality], *self.stm_size)
        return (self.stm_channels, *self.stm_size)


VARIANTS: dict[str, DenseConfig] = {
    # CPU demos and tests: trains on 2 cores in minutes at 56x56 I-frames, S = 3
    "tiny": DenseConfig(
        num_classes=10, segments=3, image_size=(56, 56), stm_size=(14, 14), stm_channels=8,
        width=64, depth=2, heads=2, filters=16, rrdb_growth=8,
    ),
    # the paper's model: 64 filters, depth 12, 12 heads; width 696 is the multiple of 12
    # whose total parameters at 224x224 come closest to the paper's 83.41 M (docs/model.md)
    "base": DenseConfig(width=696, depth=12, heads=12, filters=64),
    # the paper's "Ours-L": 96 filters, depth 16; width and heads as base
    "large": DenseConfig(width=696, depth=16, heads=12, filters=96),
}
