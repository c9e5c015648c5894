"""Input normalisation (CoViAR's, configurable), TSN segment sampling, and the geometric
augmentations applied identically to every modality of a sample: scale jitter with a
random crop (training) or a centre crop (evaluation), resize, horizontal flip (which
negates motion x)."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from deploy.artifact.inputs import IMAGENET_MEAN, IMAGENET_STD, resize_flip


@dataclass(frozen=True)
class Normalization:
    """CoViAR's input scaling (``dataset.py``/``transforms.py`` of pytorch-coviar):
    I-frame ``(x/255 - mean) / std``; MV ``clip(trunc(mv * 127.5 / mv_bound) + 128,
    0, 255) / 255 - 0.5``; residual ``(clip(r + 128, 0, 255) / 255 - 0.5) / std``.

    The model only sees 8-bit codes: :meth:`codes` turns raw arrays into them (what the
    cache stores and loaders hand over), and :func:`deploy.artifact.inputs.decode` turns codes into
    the floats on the device. :meth:`iframe`, :meth:`mv`, :meth:`residual` are the float
    reference in numpy (the pre-codes path), kept to test the two against."""

    mean: tuple[float, float, float] = IMAGENET_MEAN  # RGB
    std: tuple[float, float, float] = IMAGENET_STD  # RGB
    mv_bound: float = 20.0  # |MV| in px that maps to the ends of the uint8 range

    def mv_codes(self, x: np.ndarray) -> np.ndarray:
        """(..., 2) px -> uint8 codes, 128 = no motion. int16 (the reader's CoViAR
        mode) goes through a table of this formula over every int16 value: one
        compiled pass instead of five numpy ones, the same codes."""
        if x.dtype == np.int16:
            return _lookup(x, _mv_table(float(self.mv_bound)))
        v = np.trunc(np.asarray(x, np.float32) * np.float32(127.5 / self.mv_bound))
        return np.clip(v + 128.0, 0, 255).astype(np.uint8)

    @staticmethod
    def residual_codes(x: np.ndarray) -> np.ndarray:
        """(..., 3) residual units -> uint8 codes, 128 = no residual (int16: by table,
        as :meth:`mv_codes`)."""
        if x.dtype == np.int16:
            return _lookup(x, _residual_table())
        return np.clip(x.astype(np.int32) + 128, 0, 255).astype(np.uint8)

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(MV, residual) uint8 code of every int16 value, indexed by the value viewed as
        uint16: what :meth:`mv_codes` and :meth:`residual_codes` look int16 up in."""
        return _mv_table(float(self.mv_bound)), _residual_table()

    def codes(self, arrays: dict) -> dict:
        """Raw GOP arrays (``hybrid.video.extract`` layout) -> the same with ``mv`` and
        ``residual`` as uint8 codes (zero-padded P-frame slots become code 128)."""
        return {**arrays, "mv": self.mv_codes(arrays["mv"]),
                "residual": self.residual_codes(arrays["residual"])}

    def iframe(self, x: np.ndarray) -> np.ndarray:
        """(..., 3) uint8 RGB -> float32."""
        m, s = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return (x.astype(np.float32) / 255.0 - m) / s

    def mv(self, x: np.ndarray) -> np.ndarray:
        """(..., 2) float px -> float32, in [-0.5, 0.5]."""
        v = np.trunc(x * (127.5 / self.mv_bound))
        return (np.clip(v + 128.0, 0, 255) / 255.0 - 0.5).astype(np.float32)

    def residual(self, x: np.ndarray) -> np.ndarray:
        """(..., 3) RGB residual units -> float32."""
        s = np.asarray(self.std, np.float32)
        return ((np.clip(x.astype(np.float32) + 128.0, 0, 255) / 255.0 - 0.5) / s)


@lru_cache(maxsize=4)
def _mv_table(bound: float) -> np.ndarray:
    """uint8 MV code of every int16 value, indexed by the value as uint16."""
    v = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
    codes = Normalization(mv_bound=bound).mv_codes(v.astype(np.float32))
    return codes[np.argsort(v.view(np.uint16), kind="stable")]


@lru_cache(maxsize=1)
def _residual_table() -> np.ndarray:
    """uint8 residual code of every int16 value, indexed by the value as uint16."""
    v = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16)
    return np.clip(v.astype(np.int32) + 128, 0, 255).astype(np.uint8)


def _lookup(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[x as uint16] for int16 ``x`` of any shape, in one compiled pass."""
    from hybrid.data.codes_kernel import lookup

    flat = np.ascontiguousarray(x).reshape(-1).view(np.uint16)
    out = np.empty(flat.shape, np.uint8)
    lookup(flat, table, out)
    return out.reshape(x.shape)


def sample_segments(n: int, segments: int, train: bool,
                    rng: random.Random | None = None) -> list[int]:
    """TSN sampling of ``segments`` indices from ``n`` GOPs: split them into equal
    segments and take a random one from each (training) or each segment's middle
    (evaluation). Fewer GOPs than segments: indices repeat, in order."""
    if n < 1:
        raise ValueError("a video needs at least one GOP")
    rng = rng or random
    out = []
    for k in range(segments):
        lo, hi = n * k / segments, n * (k + 1) / segments
        a, b = int(math.floor(lo)), max(int(math.floor(lo)), int(math.ceil(hi)) - 1)
        out.append(min(n - 1, rng.randint(a, b) if train else (a + b) // 2))
    return out


@dataclass(frozen=True)
class CropConfig:
    size: int = 56  # output side (square), px
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)  # crop side / short side (train)
    eval_fraction: float = 0.875  # centre crop side / short side (eval), as 224/256
    flip: bool = True  # random horizontal flip in training


def crop_box(h: int, w: int, cfg: CropConfig, train: bool,
             rng: random.Random | None = None) -> tuple[int, int, int, int, bool]:
    """(top, left, height, width, flip) of the crop: multi-scale jitter (aspect change
    of at most one scale step, as CoViAR's GroupMultiScaleCrop) at a random place in
    training; the centre crop without flip in evaluation."""
    rng = rng or random
    short = min(h, w)
    if not train:
        side = max(1, int(short * cfg.eval_fraction))
        return (h - side) // 2, (w - side) // 2, side, side, False
    i = rng.randrange(len(cfg.scales))
    j = min(len(cfg.scales) - 1, max(0, i + rng.choice((-1, 0, 1))))
    ch, cw = max(1, int(short * cfg.scales[i])), max(1, int(short * cfg.scales[j]))
    top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
    return top, left, ch, cw, cfg.flip and rng.random() < 0.5


def apply_box(x: torch.Tensor, box: tuple[int, int, int, int, bool], size: int,
              is_mv: bool = False) -> torch.Tensor:
    """Crop ``x`` (N, C, H, W) to ``box``, resize bilinearly to (size, size), flip.
    MV values are not rescaled with the resize (as CoViAR); a flip negates MV x, which
    must be channel 0 when ``is_mv``."""
    top, left, ch, cw, flip = box
    return resize_flip(x[..., top:top + ch, left:left + cw], size, flip, is_mv)


def hflip_mv(mv: np.ndarray) -> np.ndarray:
    """Horizontal flip of a (..., H, W, 2) MV field: mirror columns, negate x."""
    out = mv[..., ::-1, :].copy()
    out[..., 0] = -out[..., 0]
    return out
