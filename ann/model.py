"""The dense partition in one file: patch embeddings, unified transformer, token
folding, Multi-Modal Mixer, RRDB, pooling and classifier.

Inputs per video (S segments): the I-frame (B, S, 3, H, W) and the membrane-potential
maps of the MV and residual STMs, (B, S, C, h, w) each. Shapes in comments:
B batch, S segments, M modalities, N = grid**2 tokens per map, D width, F filters.
"""
from __future__ import annotations

import torch
from torch import nn

from ann.config import DenseConfig
from ann.layers import (
    RRDB,
    ClassTokenPool,
    CrossEncoder,
    GlobalAvgPool,
    MixerBranch,
    PatchEmbed,
    ProjectBranch,
    SeparateEncoder,
    UnifiedEncoder,
)


def build_encoder(cfg: DenseConfig) -> nn.Module:
    M, args = len(cfg.modalities), (cfg.width, cfg.depth, cfg.heads, cfg.mlp_ratio)
    if cfg.encoder == "separate":
        return SeparateEncoder(M, *args)
    if cfg.encoder == "cross":
        return CrossEncoder(M, *args)
    return UnifiedEncoder(*args)


def _init_linear(module: nn.Module) -> None:
    """ViT initialisation of every Linear (transformer, pooling, head); convs keep
    PyTorch's default."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)


class DenseModel(nn.Module):
    """``forward(iframe, mv, residual) -> logits (B, num_classes)``; iframe (B, S, 3, H, W),
    mv and residual (B, S, C, h, w) with sizes from the config; a modality not in
    ``cfg.modalities`` may be None. ``forward_features`` -> (B, F), ``forward_head``."""

    def __init__(self, cfg: DenseConfig):
        super().__init__()
        self.cfg = cfg
        D, F, M, S, N = cfg.width, cfg.filters, len(cfg.modalities), cfg.segments, cfg.tokens
        # local spatial encoders: one learnable conv per modality -> (B*S, N, D)
        self.embed = nn.ModuleDict(
            {m: PatchEmbed(cfg.in_shape(m)[0], cfg.in_shape(m)[1:], cfg.grid, D,
                           norm=cfg.stm_norm and m != "i" and not cfg.raw_pframes)
             for m in cfg.modalities}
        )
        # learned spatio-temporal (factorised, as MM-ViT) and modality encodings
        self.pos_space = nn.Parameter(torch.zeros(1, 1, 1, N, D))
        self.pos_time = nn.Parameter(torch.zeros(1, 1, S, 1, D))
        self.pos_modality = nn.Parameter(torch.zeros(1, M, 1, 1, D))
        for p in (self.pos_space, self.pos_time, self.pos_modality):
            nn.init.trunc_normal_(p, std=0.02)
        self.encoder = build_encoder(cfg)
        # Multi-Modal Mixer, one branch per modality (summed in forward_features)
        self.mixer = nn.ModuleDict(
            {m: MixerBranch(D, F, cfg.skips) if cfg.mixer else ProjectBranch(D, F)
             for m in cfg.modalities}
        )
        self.decoder = RRDB(F, cfg.rrdb_growth) if cfg.rrdb else nn.Identity()
        self.pool = ClassTokenPool(F) if cfg.pooling == "cls" else GlobalAvgPool()
        self.head_norm = nn.LayerNorm(F)
        self.head = nn.Linear(F, cfg.num_classes)
        self.apply(_init_linear)

    def _check(self, m: str, x: torch.Tensor | None) -> torch.Tensor:
        want = (self.cfg.segments, *self.cfg.in_shape(m))
        if x is None:
            raise ValueError(f"modality {m!r} is in cfg.modalities but its input is None")
        if not (x.dim() == 5 and tuple(x.shape[1:]) == want):
            raise ValueError(f"modality {m!r}: expected (B, {', '.join(map(str, want))}), got "
                             f"{tuple(x.shape)}")
        return x

    def forward_features(
        self,
        iframe: torch.Tensor | None,
        mv: torch.Tensor | None,
        residual: torch.Tensor | None,
    ) -> torch.Tensor:
        inputs = {"i": iframe, "mv": mv, "r": residual}
        cfg, g = self.cfg, self.cfg.grid
        xs = {m: self._check(m, inputs[m]) for m in cfg.modalities}
        B, S = next(iter(xs.values())).shape[:2]
        if not all(x.shape[0] == B for x in xs.values()):
            raise ValueError(f"batch sizes differ between modalities: "
                             f"{({m: x.shape[0] for m, x in xs.items()})}")
        emb = {m: self.embed[m](x.flatten(0, 1)) for m, x in xs.items()}  # (B*S, N, D)
        # the initial feature maps, for the mixer's skip: (B*S, D, g, g)
        initial = {m: t.transpose(1, 2).reshape(B * S, -1, g, g) for m, t in emb.items()}
        tok = torch.stack([t.reshape(B, S, g * g, -1) for t in emb.values()], 1)  # (B,M,S,N,D)
        tok = tok + self.pos_space + self.pos_time + self.pos_modality
        M, D = tok.shape[1], tok.shape[-1]
        tok = self.encoder(tok.reshape(B, M, S * g * g, D))  # (B, M, S*N, D)
        # token folding: each modality's tokens back to (B*S, D, g, g) maps
        maps = tok.reshape(B, M, S, g, g, D).permute(1, 0, 2, 5, 3, 4).reshape(M, B * S, D, g, g)
        mixed = sum(
            self.mixer[m](maps[i], initial[m]) for i, m in enumerate(cfg.modalities)
        )  # (B*S, F, g, g): element-wise sum over modalities
        y = self.decoder(mixed)  # (B*S, F, g, g)
        return self.pool(y.reshape(B, S, *y.shape[1:]))  # (B, F)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_norm(features))  # (B, num_classes)

    def forward(
        self,
        iframe: torch.Tensor | None,
        mv: torch.Tensor | None = None,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(iframe, mv, residual))
