"""Does the STM filter noise? The appendix's claim (Sec. 2, Fig. 1: the LIF's leak and
threshold let frequent object motion through and decay rare sensor / background
motion) measured on synthetic clips, against the accumulated MVs themselves (what the
model without STM sees).

Clips: ``hybrid synth`` videos of one GOP with a still camera, no pixel noise and no
distractor, so every motion vector the codec reports belongs to the moving object;
the object's region is where the clean clip has motion (>= 1 px at some step). Noise is
then added to the clip's per-frame motion at a rate ``r`` per P-frame and carried
through CoViAR's accumulation (which, for still content, keeps a one-frame spurious
vector from that frame to the GOP's end: the accumulated field is the running sum):

- ``sensor``: each ``cell`` x ``cell`` block (an MPEG-4 block at the crop's scale)
  independently gets a spurious vector (uniform direction, 1-3 px) with probability r;
- ``jitter``: with probability r the camera shakes by 1 px (x, y in {-1, 0, 1}), which
  moves the whole frame (object and background);
- ``transient``: the sensor noise without accumulation (each spurious vector lasts one
  P-frame, as in non-accumulated MVs): the rare, brief events the appendix's argument
  is about. Accumulation turns each of them into a step that lasts to the GOP's end.

Measures, inside the object's region and outside it, per clip: the STM's output spike
rate (last layer, spikes per neuron and step) and the membrane-potential energy (mean
v^2 of the last layer after the last step: what the bridge carries), beside the MVs'
event rate (share of pixels and steps with ``|mv| >= 0.5`` px, the spike rate's analogue)
and the energy of the last accumulated MV (mean ``|mv|^2`` in px^2: what the model without
STM sees). The
selectivity of a measure is ``inside / (inside + outside)``: 1 = only the object,
0.5 = no preference.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deploy.artifact.inputs import decode_sample
from hybrid.data.dataset import COVIAR_NORM, CompressedVideoDataset
from hybrid.model import HybridModel

KINDS = ("sensor", "jitter", "transient")


def stm_input(mv: np.ndarray, mv_bound: float = COVIAR_NORM.mv_bound) -> np.ndarray:
    """(..., 2) px -> float32: the dataset's MV scaling
    (:class:`~hybrid.data.transforms.Normalization`) without its uint8 rounding: noisy
    vectors are not re-quantised (CoViAR's quantum is 0.16 px; a round trip through
    trunc() could drop a clean vector by one quantum through float error)."""
    v = mv * (127.5 / mv_bound)
    return (np.clip(v + 128.0, 0, 255) / 255.0 - 0.5).astype(np.float32)


@dataclass
class Clip:
    mv: np.ndarray  # (T, H, W, 2) accumulated MV in px (x, y) of the crop, clean
    inside: np.ndarray  # (H, W) bool: the moving object's region
    label: str


def mv_to_px(x: np.ndarray, mv_bound: float = COVIAR_NORM.mv_bound) -> np.ndarray:
    """CoViAR-normalised MV -> px (the normalisation's inverse, up to its quantum)."""
    return ((x + 0.5) * 255.0 - 128.0) * (mv_bound / 127.5)


def clean_clips(model: HybridModel, n: int, video_size: tuple[int, int],
                seed: int = 0) -> list[Clip]:
    """``n`` one-GOP synthetic clips of the moving classes (not ``hold``), read as the
    model reads a video (its centre crop)."""
    from hybrid.video.synth import MOTIONS, SynthConfig, render_video
    from hybrid.video.transcode import EncodeConfig, encode_mpeg4

    cfg = SynthConfig(size=video_size, frames=12, jitter=0.0, noise=0.0, distractors=0)
    labels = [k for k, m in enumerate(MOTIONS) if m.name != "hold"]
    clips = []
    with tempfile.TemporaryDirectory(prefix="stm-denoising-") as tmp:
        items = []
        for i in range(n):
            label = labels[i % len(labels)]
            rel = f"clip{i}.avi"
            encode_mpeg4(render_video(label, seed * 1000 + i, cfg), Path(tmp) / rel,
                         EncodeConfig(size=video_size))
            items.append((rel, label))
        ds = CompressedVideoDataset(tmp, items, 1, train=False, crop=model.cfg.size[0],
                                    video_size=video_size)
        for i, (_, label) in enumerate(items):
            codes = decode_sample(ds[i])["mv"][0].numpy()  # (T, 2, H, W) normalised
            mv = mv_to_px(codes).transpose(0, 2, 3, 1)  # (T, H, W, 2) px
            inside = (np.hypot(mv[..., 0], mv[..., 1]) >= 1.0).any(0)
            clips.append(Clip(mv.astype(np.float32), inside, MOTIONS[label].name))
    return clips


def add_noise(mv: np.ndarray, kind: str, rate: float, rng: np.random.Generator,
              cell: int = 4) -> np.ndarray:
    """Accumulated MV (T, H, W, 2) px plus noise of ``kind`` at ``rate`` per P-frame,
    accumulated (a running sum over the GOP's P-frames)."""
    if kind not in KINDS:
        raise ValueError(f"noise kind must be one of {KINDS}, got {kind!r}")
    if not (0.0 <= rate <= 1.0):
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    T, H, W, _ = mv.shape
    if kind in ("sensor", "transient"):
        gh, gw = -(-H // cell), -(-W // cell)
        hit = rng.random((T, gh, gw)) < rate
        ang = rng.uniform(0, 2 * np.pi, (T, gh, gw))
        mag = rng.uniform(1.0, 3.0, (T, gh, gw)) * hit
        step = np.stack([mag * np.cos(ang), mag * np.sin(ang)], -1)  # (T, gh, gw, 2)
        step = np.repeat(np.repeat(step, cell, 1), cell, 2)[:, :H, :W]
    else:
        shake = rng.integers(-1, 2, (T, 2)) * (rng.random((T, 1)) < rate)
        step = np.broadcast_to(shake[:, None, None, :], (T, H, W, 2)).astype(np.float64)
    return (mv + (step if kind == "transient" else np.cumsum(step, 0))).astype(np.float32)


def _selectivity(inside: float, outside: float) -> float:
    total = inside + outside
    return float(inside / total) if total > 0 else float("nan")


@torch.no_grad()
def measure(model: HybridModel, mv: np.ndarray, inside: np.ndarray) -> dict:
    """Inside / outside measures of one accumulated MV clip (T, H, W, 2) px through the
    model's MV STM (float, its trained weights, thresholds and leaks)."""
    stm = model.stm_mv.stm
    x = stm_input(mv)  # (T, H, W, 2), normalised as the dataset
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 1, 2, 0)))[None]  # (1, 2, H, W, T)
    out = stm(x, return_spike_maps=True, quant="float")
    s = out.spike_maps[-1][0].numpy()  # (C, h, w, T)
    v = out.v[0].numpy()  # (C, h, w)
    stride = int(np.prod(stm.cfg.strides))
    h, w = v.shape[-2:]
    ins = inside[::stride, ::stride][:h, :w]  # the object's region at the feature centres
    e_mv = (mv[-1] ** 2).sum(-1)  # (H, W) px^2
    ev = np.hypot(mv[..., 0], mv[..., 1]) >= 0.5  # (T, H, W) MV events
    rows = {
        "stm_spike_rate": (s[:, ins].mean(), s[:, ~ins].mean()),
        "stm_v_energy": ((v[:, ins] ** 2).mean(), (v[:, ~ins] ** 2).mean()),
        "mv_event_rate": (ev[:, inside].mean(), ev[:, ~inside].mean()),
        "mv_energy": (e_mv[inside].mean(), e_mv[~inside].mean()),
    }
    return {k: {"inside": float(a), "outside": float(b), "selectivity": _selectivity(a, b)}
            for k, (a, b) in rows.items()}


def sweep(model: HybridModel, clips: list[Clip], rates: list[float], repeats: int = 2,
          seed: int = 0, progress=None) -> dict:
    """Per noise kind and rate, each measure's inside / outside / selectivity averaged
    over clips and ``repeats`` noise draws (selectivity of the averages)."""
    res = {}
    for kind in KINDS:
        res[kind] = []
        for r in rates:
            acc: dict[str, list] = {}
            for j, clip in enumerate(clips):
                for k in range(repeats):
                    rng = np.random.default_rng([seed, j, k, KINDS.index(kind)])
                    m = measure(model, add_noise(clip.mv, kind, r, rng), clip.inside)
                    for name, d in m.items():
                        acc.setdefault(name, []).append((d["inside"], d["outside"]))
            row = {"rate": r}
            for name, pairs in acc.items():
                a, b = np.mean(pairs, 0)
                row[name] = {"inside": float(a), "outside": float(b),
                             "selectivity": _selectivity(a, b)}
            res[kind].append(row)
            if progress:
                progress(kind, r)
    return res
