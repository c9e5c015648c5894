"""Small building blocks of the dense partition, one concern per file (timm style)."""
from ann.layers.attention import Attention, CrossAttention
from ann.layers.block import Block, CrossBlock
from ann.layers.encoder import CrossEncoder, SeparateEncoder, UnifiedEncoder
from ann.layers.mixer import MixerBranch, ProjectBranch
from ann.layers.mlp import Mlp
from ann.layers.patch_embed import PatchEmbed
from ann.layers.pool import ClassTokenPool, GlobalAvgPool
from ann.layers.rrdb import RRDB, ResidualDenseBlock

__all__ = [
    "Attention", "CrossAttention", "Block", "CrossBlock", "MixerBranch", "ProjectBranch",
    "Mlp", "UnifiedEncoder", "SeparateEncoder", "CrossEncoder", "PatchEmbed",
    "ClassTokenPool", "GlobalAvgPool", "RRDB", "ResidualDenseBlock",
]
