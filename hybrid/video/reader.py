"""The compressed-domain reader: per GOP, the I-frame and, per P-frame, the per-pixel
motion field and the residual, accumulated back to the I-frame as in CoViAR or not.

Conventions (all modes):
- ``mv[..., 0]`` is x, ``mv[..., 1]`` is y, in pixels, the content's motion ``dst - src``
  (a square moving +4 px right per frame has mv x = +4 at the P-frame after it moved).
- ``residual`` is in RGB intensity units: ``frame_t - reference`` (float32, -255..255).

CoViAR mode (``coviar=True``) reproduces CoViAR's ``coviar_data_loader.c`` exactly:
- per-pixel field of a P-frame: ``dst - src`` of the exported block vector (sub-pel
  truncated by FFmpeg), written on every pixel of the block where both that pixel and its
  source pixel lie inside the frame; 0 elsewhere (intra blocks, out of bounds);
- accumulation keeps ``accu_src``, a map from each pixel of the current frame to a pixel
  of the GOP's I-frame: identity at the I-frame, then per P-frame
  ``accu_src[p] = accu_src_prev[p - field[p]]`` (one gather a frame: linear time);
  accumulated MV = ``p - accu_src[p]``, accumulated residual =
  ``frame_t[p] - iframe[accu_src[p]]``;
- without accumulation: the frame's own field and ``frame_t[p] - frame_{t-1}[p - field[p]]``.
(CoViAR works in BGR; the values per channel are the same, we store RGB.)

Sub-pixel mode (``coviar=False``): the field holds ``-motion / motion_scale`` (half-pel for
MPEG-4) instead of the truncated integer; ``accu_src`` is kept in float (nearest-pixel
gather plus the fractional remainder), and pixels are fetched at the nearest position.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybrid.video.errors import (
    CorruptVideoError,
    TooShortVideoError,
    TruncatedVideoError,
    UnsupportedStreamError,
)
from hybrid.video.probe import open_video

GOP_SIZE = 12  # 1 I-frame + 11 P-frames
P_PER_GOP = GOP_SIZE - 1


@dataclass
class GOP:
    """One group of pictures, starting at an I-frame."""

    index: int  # GOP number in the video, from 0
    start: int  # frame number of the I-frame
    iframe: np.ndarray  # (H, W, 3) uint8 RGB
    mv: np.ndarray  # (P, H, W, 2) float32 pixels, x then y, content motion dst - src
    residual: np.ndarray  # (P, H, W, 3) float32 RGB units

    def __post_init__(self) -> None:
        p = self.mv.shape[0]
        assert self.iframe.ndim == 3 and self.iframe.shape[2] == 3, (
            f"iframe must be (H, W, 3), got {self.iframe.shape}")
        assert self.mv.shape[1:] == self.iframe.shape[:2] + (2,), (
            f"mv {self.mv.shape} does not match iframe {self.iframe.shape}")
        assert self.residual.shape == (p,) + self.iframe.shape, (
            f"residual {self.residual.shape} does not match mv {self.mv.shape}")

    @property
    def p_frames(self) -> int:
        return self.mv.shape[0]


def mv_field(vectors: np.ndarray | None, h: int, w: int, coviar: bool = True) -> np.ndarray:
    """Per-pixel motion field (H, W, 2) of one P-frame from FFmpeg's exported vectors
    (a structured array: ``source, w, h, src_x, src_y, dst_x, dst_y, motion_x, ...``).
    int32 ``dst - src`` in CoViAR mode, float32 ``-motion / motion_scale`` otherwise."""
    field = np.zeros((h, w, 2), np.int32 if coviar else np.float32)
    if vectors is None or len(vectors) == 0:
        return field
    vectors = vectors[vectors["source"] < 0]  # past reference (all vectors of a P-frame)
    ix = (vectors["dst_x"] - vectors["src_x"]).astype(np.int32)
    iy = (vectors["dst_y"] - vectors["src_y"]).astype(np.int32)
    if coviar:
        vx, vy = ix, iy
    else:
        scale = vectors["motion_scale"].astype(np.float32)
        vx = -vectors["motion_x"] / scale
        vy = -vectors["motion_y"] / scale
    bw_all, bh_all = vectors["w"].astype(np.int32), vectors["h"].astype(np.int32)
    for bw, bh in sorted(set(zip(bw_all.tolist(), bh_all.tolist()))):
        sel = (bw_all == bw) & (bh_all == bh)
        dx, dy = vectors["dst_x"][sel].astype(np.int32), vectors["dst_y"][sel].astype(np.int32)
        cx = dx[:, None, None] + np.arange(-(bw // 2), bw // 2)[None, None, :]  # (n, 1, bw)
        cy = dy[:, None, None] + np.arange(-(bh // 2), bh // 2)[None, :, None]  # (n, bh, 1)
        px, py = cx - ix[sel][:, None, None], cy - iy[sel][:, None, None]
        ok = ((cx >= 0) & (cx < w) & (px >= 0) & (px < w)
              & (cy >= 0) & (cy < h) & (py >= 0) & (py < h))  # (n, bh, bw)
        n = ok.shape[0]
        cxb, cyb = np.broadcast_to(cx, ok.shape)[ok], np.broadcast_to(cy, ok.shape)[ok]
        which = np.broadcast_to(np.arange(n)[:, None, None], ok.shape)[ok]
        field[cyb, cxb, 0] = vx[sel][which]
        field[cyb, cxb, 1] = vy[sel][which]
    return field


class _Tracer:
    """Turns a GOP's decoded frames and fields into MV and residual, accumulated or not."""

    def __init__(self, iframe: np.ndarray, accumulate: bool, coviar: bool) -> None:
        h, w, _ = iframe.shape
        self.h, self.w, self.accumulate, self.coviar = h, w, accumulate, coviar
        self.iframe = iframe
        self.flat_i = iframe.reshape(-1, 3).astype(np.int16)
        self.prev = self.flat_i  # previous decoded frame, flat
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.int32)
        dt = np.int32 if coviar else np.float32
        self.ax, self.ay = self.xx.astype(dt), self.yy.astype(dt)  # accu_src (x, y)

    def step(self, frame: np.ndarray, field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w, h = self.w, self.h
        cur = frame.reshape(-1, 3).astype(np.int16)
        if self.coviar:
            sx, sy = self.xx - field[..., 0], self.yy - field[..., 1]  # in frame by design
            src = (sy * w + sx).ravel()
            if self.accumulate:
                self.ax = self.ax.ravel()[src].reshape(h, w)
                self.ay = self.ay.ravel()[src].reshape(h, w)
                mv = np.stack([self.xx - self.ax, self.yy - self.ay], -1)
                ref = self.flat_i[(self.ay * w + self.ax).ravel()]
            else:
                mv = field
                ref = self.prev[src]
        else:
            fx = np.clip(self.xx - field[..., 0], 0, w - 1)
            fy = np.clip(self.yy - field[..., 1], 0, h - 1)
            rx, ry = np.rint(fx).astype(np.int32), np.rint(fy).astype(np.int32)
            src = (ry * w + rx).ravel()
            if self.accumulate:
                self.ax = self.ax.ravel()[src].reshape(h, w) + (fx - rx)
                self.ay = self.ay.ravel()[src].reshape(h, w) + (fy - ry)
                mv = np.stack([self.xx - self.ax, self.yy - self.ay], -1)
                bx = np.clip(np.rint(self.ax), 0, w - 1).astype(np.int32)
                by = np.clip(np.rint(self.ay), 0, h - 1).astype(np.int32)
                ref = self.flat_i[(by * w + bx).ravel()]
            else:
                mv = field
                ref = self.prev[src]
        self.prev = cur
        res = (cur - ref).reshape(h, w, 3)
        return mv.astype(np.float32), res.astype(np.float32)


def _decode(path: Path, gop_size: int) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
    """Yields (frame type, RGB (H, W, 3) uint8, exported vectors or None) per frame, and
    raises typed errors for unsupported, corrupt and truncated streams."""
    import av

    with open_video(path) as c:
        vs = c.streams.video[0]
        vs.codec_context.options = {"flags2": "+export_mvs"}
        declared = int(vs.frames or 0)
        n, corrupt_at = 0, None
        try:
            for frame in c.decode(vs):
                if corrupt_at is not None:
                    raise CorruptVideoError(path, f"frame {corrupt_at} is corrupt "
                                                  f"(damaged data in the stream)")
                kind = av.video.frame.PictureType(frame.pict_type).name[:1]
                if kind not in "IP":
                    raise UnsupportedStreamError(
                        path, f"frame {n} is a {kind}-frame; the reader needs I/P frames only "
                              f"(MPEG-4 GOP {gop_size}, no B-frames): transcode it first")
                if frame.is_corrupt:
                    corrupt_at = n
                sd = frame.side_data.get("MOTION_VECTORS")
                yield kind, frame.to_ndarray(format="rgb24"), (
                    None if sd is None else sd.to_ndarray())
                n += 1
        except av.error.FFmpegError as e:
            raise CorruptVideoError(path, f"decoding failed after {n} frames: {e}") from e
        if corrupt_at is not None or (declared and n < declared):
            raise TruncatedVideoError(path, f"stream ends early: {n} frames decoded"
                                            + (f" of {declared} declared" if declared else
                                               ", the last one incomplete"))


def read_gops(path: str | Path, accumulate: bool = True, coviar: bool = True,
              gop_size: int = GOP_SIZE) -> Iterator[GOP]:
    """Yield the video's GOPs in order: I-frame, per-P-frame MV field and residual.

    ``accumulate``: trace MV and residual back to the GOP's I-frame (CoViAR) or give
    each P-frame's own. ``coviar``: CoViAR's integer-pixel definition (exact) or the
    sub-pixel one. A GOP has at most ``gop_size - 1`` P-frames; the last one of a video
    may have fewer. Raises a :class:`~hybrid.video.errors.VideoError` naming ``path``
    for bad input (a GOP already yielded stays valid)."""
    path = Path(path)
    cur: dict | None = None
    n = 0

    def close(c: dict) -> GOP:
        h, w, _ = c["iframe"].shape
        mv = np.stack(c["mv"]) if c["mv"] else np.zeros((0, h, w, 2), np.float32)
        res = np.stack(c["res"]) if c["res"] else np.zeros((0, h, w, 3), np.float32)
        return GOP(c["index"], c["start"], c["iframe"], mv, res)

    for kind, rgb, vectors in _decode(path, gop_size):
        if kind == "I":
            if cur is not None:
                yield close(cur)
            cur = {"index": 0 if cur is None else cur["index"] + 1, "start": n,
                   "iframe": rgb, "mv": [], "res": [],
                   "tracer": _Tracer(rgb, accumulate, coviar)}
        else:
            if cur is None:
                raise UnsupportedStreamError(path, "stream does not start with an I-frame")
            if len(cur["mv"]) >= gop_size - 1:
                raise UnsupportedStreamError(
                    path, f"GOP at frame {cur['start']} has more than {gop_size - 1} "
                          f"P-frames (not GOP {gop_size}): transcode it first")
            h, w, _ = rgb.shape
            mv, res = cur["tracer"].step(rgb, mv_field(vectors, h, w, coviar))
            cur["mv"].append(mv)
            cur["res"].append(res)
        n += 1
    if n < gop_size:
        raise TooShortVideoError(path, f"{n} frames, fewer than one GOP ({gop_size})")
    if cur is not None:
        yield close(cur)
