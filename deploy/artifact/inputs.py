"""The input spec of a deployed model: what the host must feed the hybrid chip.

Written into every artifact (``spec.json``) so that the runtime, or any other host code,
prepares inputs exactly as in training: which modalities, how many TSN segments of how
many P-frames, the crop sizes, the normalisation (CoViAR's, its fields as given by the
training side) and each STM's fixed-point input quantisation.

It also holds :func:`decode`, the one function that turns a loader's uint8 codes into the
model's normalised floats on the device; training, evaluation, prediction (``hybrid``)
and the runtime here all call it, so they cannot drift. Loaders hand over what the model
sees as 8-bit codes, cropped but not resized: the I-frame's RGB, the motion vectors'
CoViAR codes ``clip(trunc(mv * 127.5 / bound) + 128, 0, 255)`` and the residuals'
``clip(r + 128, 0, 255)``, each in a square buffer of side M whose top-left ``(h, w)`` is
the crop, with ``box = (h, w, flip, size)`` per sample.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

STM_CHANNELS = {"mv": 2, "r": 3}  # input channels of each STM branch
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB; CoViAR's I-frame and residual scaling
IMAGENET_STD = (0.229, 0.224, 0.225)  # RGB
# sanity bounds of a stored spec (the exact values are checked against the model: the
# dense partition's segments, the reader's P-frames a GOP); beyond them a run would
# allocate without end
MAX_SEGMENTS, MAX_TIMESTEPS, MAX_SIDE = 1024, 1024, 8192


def _whole(name: str, v, lo: int, hi: int) -> int:
    """``v`` as an int in lo..hi, else ValueError naming the field."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= v <= hi:
        raise ValueError(f"input spec: {name} {v!r} is not a whole number in {lo}..{hi}")
    return int(v)


def _reals(name: str, v, n: int, positive: bool) -> None:
    ok = (isinstance(v, (list, tuple)) and len(v) == n and all(
        isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)
        and (x > 0 or not positive) for x in v))
    if not ok:
        raise ValueError(f"input spec: normalization {name} {v!r} is not {n} finite "
                         f"{'positive ' if positive else ''}numbers")


@dataclass(frozen=True)
class InputSpec:
    modalities: tuple[str, ...]  # subset of ("i", "mv", "r"), in that order
    segments: int  # S: TSN segments (GOPs) per video
    timesteps: int  # T: P-frames per segment = STM timesteps
    crop: tuple[int, int]  # (H, W) of the I-frame crop fed to the dense partition
    stm_size: tuple[int, int]  # (H, W) of the MV / residual crops fed to the STMs
    normalization: dict = field(default_factory=dict)  # the training side's normalisation
    # per STM modality: {"frac_bits", "bits"}: graded messages round(x * 2**frac_bits),
    # clamped to signed ``bits``
    fixed_point: dict = field(default_factory=dict)
    # (W, H) the model's training videos were read at (the checkpoint's ``video_size``);
    # None: not recorded (an artifact of version 1, or a checkpoint without it)
    video_size: tuple[int, int] | None = None

    def __post_init__(self):
        """Every field checked (a stored spec is not trusted): ValueError naming it."""
        if not (isinstance(self.modalities, (list, tuple)) and self.modalities
                and all(m in ("i", "mv", "r") for m in self.modalities)
                and len(set(self.modalities)) == len(self.modalities)):
            raise ValueError(f"input spec: modalities {self.modalities!r} must be a "
                             f"non-empty subset of i, mv, r")
        object.__setattr__(self, "modalities", tuple(self.modalities))
        if self.video_size is not None:
            v = self.video_size
            if not (isinstance(v, (list, tuple)) and len(v) == 2):
                raise ValueError(f"input spec: video_size {v!r} is not (W, H)")
            object.__setattr__(self, "video_size",
                               tuple(_whole("video_size", x, 1, MAX_SIDE) for x in v))
        object.__setattr__(self, "segments", _whole("segments", self.segments, 1, MAX_SEGMENTS))
        object.__setattr__(self, "timesteps",
                           _whole("timesteps", self.timesteps, 1, MAX_TIMESTEPS))
        for name in ("crop", "stm_size"):
            v = getattr(self, name)
            if not (isinstance(v, (list, tuple)) and len(v) == 2):
                raise ValueError(f"input spec: {name} {v!r} is not (H, W)")
            object.__setattr__(self, name, tuple(_whole(name, x, 1, MAX_SIDE) for x in v))
        if not isinstance(self.normalization, dict):
            raise ValueError(f"input spec: normalization {self.normalization!r} is not an "
                             "object")
        n = self.normalization
        unknown = set(n) - {"mean", "std", "mv_bound", "quantize"}  # quantize: before codes
        if unknown:
            raise ValueError(f"input spec: normalization has unknown fields {sorted(unknown)}")
        for name, positive in (("mean", False), ("std", True)):
            if name in n:
                _reals(name, n[name], 3, positive)
        if "mv_bound" in n:
            _reals("mv_bound", [n["mv_bound"]], 1, True)
        stms = {m for m in self.modalities if m in STM_CHANNELS}
        if not isinstance(self.fixed_point, dict) or set(self.fixed_point) != stms:
            raise ValueError(f"input spec: fixed_point has {sorted(self.fixed_point)}, STMs "
                             f"{sorted(stms)}")
        for m, fp in self.fixed_point.items():
            if not (isinstance(fp, dict) and set(fp) == {"frac_bits", "bits"}):
                raise ValueError(f"input spec: fixed_point.{m} {fp!r} is not "
                                 "{frac_bits, bits}")
            _whole(f"fixed_point.{m}.frac_bits", fp["frac_bits"], 0, 24)
            _whole(f"fixed_point.{m}.bits", fp["bits"], 0, 24)

    @property
    def stm_modalities(self) -> tuple[str, ...]:
        return tuple(m for m in self.modalities if m in STM_CHANNELS)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per sample key: the (S, ...) shape one video's input must have."""
        S, T = self.segments, self.timesteps
        return {"iframe": (S, 3, *self.crop), "mv": (S, T, 2, *self.stm_size),
                "residual": (S, T, 3, *self.stm_size)}

    def check(self, sample: dict, name: str) -> None:
        """Raise ValueError naming ``name`` when ``sample`` does not fit this spec."""
        keys = {"i": "iframe", "mv": "mv", "r": "residual"}
        for m in self.modalities:
            want, got = self.shapes()[keys[m]], tuple(sample[keys[m]].shape)
            if got != want:
                raise ValueError(f"{name}: input {keys[m]!r} has shape {got}, the deployed "
                                 f"model needs {want}")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {**d, "modalities": list(self.modalities), "crop": list(self.crop),
                "stm_size": list(self.stm_size),
                "video_size": None if self.video_size is None else list(self.video_size)}

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        if not isinstance(d, dict):
            raise ValueError(f"input spec: {d!r} is not an object")
        return cls(**d)


def resize_flip(x: torch.Tensor, size: int, flip: bool, is_mv: bool) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, size, size): resize bilinearly (MV values are not rescaled
    with the resize, as CoViAR), flip (negating MV x, channel 0, when ``is_mv``)."""
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if flip:
        x = x.flip(-1)
        if is_mv:
            x[:, 0].neg_()
    return x


def _geometry(x: torch.Tensor, h: int, w: int, flip: bool, size: int,
              is_mv: bool) -> torch.Tensor:
    """(N, C, M, M) -> (N, C, size, size): crop the top-left (h, w), then
    :func:`resize_flip` (which ``hybrid.data.transforms.apply_box`` uses too)."""
    return resize_flip(x[..., :h, :w], size, flip, is_mv)


def decode(batch: dict, device: torch.device | str | None = None,
           mean: tuple[float, float, float] = IMAGENET_MEAN,
           std: tuple[float, float, float] = IMAGENET_STD) -> dict:
    """A batch of codes -> the model's float inputs on ``device``.

    ``batch``: ``iframe`` (B, S, 3, M, M), ``mv`` (B, S, T, 2, M, M), ``residual``
    (B, S, T, 3, M, M), all uint8, ``box`` (B, 4) int (h, w, flip, size), and any other
    entries (moved as they are). Returns ``iframe`` (B, S, 3, C, C), ``mv`` (B, S, T, 2,
    C, C), ``residual`` (B, S, T, 3, C, C) float32 with C = size, and the others."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "box"}
    for k in ("iframe", "mv", "residual"):
        if out[k].dtype != torch.uint8:
            raise ValueError(f"decode: {k} must be uint8 codes, got {out[k].dtype}")
    dev = out["iframe"].device
    m = torch.tensor(mean, dtype=torch.float32, device=dev).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=dev).view(3, 1, 1)
    floats = {"iframe": (out["iframe"].float() / 255.0 - m) / s,
              "mv": out["mv"].float() / 255.0 - 0.5,
              "residual": (out["residual"].float() / 255.0 - 0.5) / s}
    boxes = batch["box"].tolist()
    sizes = {b[3] for b in boxes}
    if len(sizes) != 1:
        raise ValueError(f"decode: one output size per batch, got {sorted(sizes)}")
    (size,) = sizes
    for k, x in floats.items():
        lead, (c, mm) = x.shape[:-3], x.shape[-3:-1]
        rows = [_geometry(xb.reshape(-1, c, mm, mm), h, w, bool(f), size, k == "mv")
                for xb, (h, w, f, _) in zip(x, boxes)]
        out[k] = torch.stack(rows).reshape(lead + (c, size, size))
    return out


def decode_sample(sample: dict, device: torch.device | str | None = None,
                  mean: tuple[float, float, float] = IMAGENET_MEAN,
                  std: tuple[float, float, float] = IMAGENET_STD) -> dict:
    """One sample (no batch dimension) through :func:`decode`."""
    one = decode({k: torch.as_tensor(v)[None] for k, v in sample.items()}, device, mean, std)
    return {k: v[0] for k, v in one.items()}
