"""Per-pixel motion fields from FFmpeg's exported block vectors, and the per-GOP tracers
that turn them into MV and residual, accumulated back to the I-frame (CoViAR) or not.
See ``hybrid.video.reader`` for the definitions.

Two implementations of CoViAR's integer-pixel mode: :func:`mv_field` + :class:`Tracer`
(the reference, any block layout, also the sub-pixel mode), and :func:`grid_field` +
:class:`FastTracer` (MPEG-4: blocks on the 8-pixel grid, so the field is painted per
8x8 cell and expanded once; accumulation carries the accumulated MV itself,
``acc[p] = field[p] + acc_prev[p - field[p]]``, one packed gather a frame, and the
residual gathers RGBA pixels as uint32). Tests check both give identical results.
"""
from __future__ import annotations

import numpy as np

CELL = 8  # MPEG-4 exports 16x16 (and 8x8) blocks whose origins lie on this grid


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


class Tracer:
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


def pack(ix: np.ndarray, iy: np.ndarray, w: int) -> np.ndarray:
    """Pack integer ``dst - src`` x, y and the flat offset ``y * W + x`` into int64:
    viewed as int16 (..., 4): [x, y, offset lo, offset hi]; as int32 (..., 2): offset
    at [..., 1]."""
    out = np.zeros(np.shape(ix) + (4,), np.int16)
    out[..., 0], out[..., 1] = ix, iy
    out.view(np.int32)[..., 1] = np.asarray(iy, np.int32) * w + ix
    return out.view(np.int64)[..., 0]


def unpack(packed: np.ndarray) -> np.ndarray:
    """(..., ) int64 from :func:`pack` -> (..., 2) int32 x, y."""
    return packed.view(np.int16).reshape(packed.shape + (4,))[..., :2].astype(np.int32)


def grid_field(vectors: np.ndarray | None, h: int, w: int) -> np.ndarray | None:
    """CoViAR's per-pixel field painted per 8x8 cell, as (H, W) int64 packed by
    :func:`pack`; None when a block is off the 8-pixel grid (then pack the output of
    :func:`mv_field`)."""
    hc, wc = -(-h // CELL), -(-w // CELL)
    cells = np.zeros(hc * wc, np.int64)
    m = 0
    if vectors is not None and len(vectors):
        v = vectors[vectors["source"] < 0]
        bw, bh = v["w"].astype(np.int32), v["h"].astype(np.int32)
        x0 = v["dst_x"].astype(np.int32) - bw // 2
        y0 = v["dst_y"].astype(np.int32) - bh // 2
        if ((x0 | y0 | bw | bh) & (CELL - 1)).any():
            return None
        ix = v["dst_x"].astype(np.int32) - v["src_x"]
        iy = v["dst_y"].astype(np.int32) - v["src_y"]
        val = pack(ix, iy, w)
        for nx, ny in sorted(set(zip((bw // CELL).tolist(), (bh // CELL).tolist()))):
            sel = (bw == nx * CELL) & (bh == ny * CELL)
            vs, cy0, cx0 = val[sel], y0[sel] // CELL, x0[sel] // CELL
            for i in range(ny):
                for j in range(nx):
                    cy, cx = cy0 + i, cx0 + j
                    ok = (cy >= 0) & (cy < hc) & (cx >= 0) & (cx < wc)
                    cells[cy[ok] * wc + cx[ok]] = vs[ok]
        m = int(max(np.abs(ix).max(initial=0), np.abs(iy).max(initial=0)))
    rows = np.repeat(cells.reshape(hc, wc), CELL, axis=1)[:, :w]  # (hc, W)
    field = np.ascontiguousarray(  # each cell row repeated 8 times: (H, W)
        np.broadcast_to(rows[:, None, :], (hc, CELL, w)).reshape(hc * CELL, w)[:h])
    if m:  # pixels whose source leaves the frame get no vector: only near the border
        f16 = field.view(np.int16).reshape(h, w, 4)
        for axis, size in ((1, w), (0, h)):
            k = min(m, size)
            for band in (slice(0, k), slice(size - k, size)):
                sl = (slice(None), band) if axis == 1 else (band, slice(None))
                pos = np.arange(size)[band]
                pos = pos[None, :] if axis == 1 else pos[:, None]
                src = pos - f16[sl + (1 - axis,)]  # x for the column band, y for rows
                bad = (src < 0) | (src >= size)
                if bad.any():
                    field[sl][bad] = 0
    return field


def with_offsets(field: np.ndarray) -> np.ndarray:
    """(H, W, 2) integer field from :func:`mv_field` -> packed like grid_field."""
    return pack(field[..., 0], field[..., 1], field.shape[1])


class FastTracer:
    """CoViAR integer-pixel mode on RGBA frames; writes into caller-provided outputs.
    State per pixel, packed in one int64 for a single gather a frame: the flat index of
    the I-frame pixel it traces to (int32) and the accumulated MV (2 x int16)."""

    def __init__(self, iframe_rgba: np.ndarray, accumulate: bool) -> None:
        h, w, _ = iframe_rgba.shape
        self.h, self.w, self.n, self.accumulate = h, w, h * w, accumulate
        self.ref = iframe_rgba.reshape(-1).view(np.uint32)  # (N,) packed RGBA
        self.prev = self.ref
        self.idx = np.arange(h * w, dtype=np.int32)
        self.state = np.zeros((h * w, 4), np.int16)  # [src lo, src hi, mv x, mv y]
        self.state.view(np.int32)[:, 0] = self.idx

    def step(self, rgba: np.ndarray, field: np.ndarray, mv_out: np.ndarray,
             res_out: np.ndarray) -> None:
        """rgba (H, W, 4) uint8 contiguous, field (H, W) int64 from grid_field ->
        mv_out (H, W, 2) and res_out (H, W, 3) float32."""
        n = self.n
        f = field.reshape(n).view(np.int16).reshape(n, 4)
        src = self.idx - field.reshape(n).view(np.int32).reshape(n, 2)[:, 1]
        mv = mv_out.reshape(n, 2)
        if self.accumulate:
            st = self.state.view(np.int64)[:, 0][src].view(np.int16).reshape(n, 4)
            for c in range(2):  # per channel: long inner loops (a (N, 2) loop is slow)
                np.add(st[:, 2 + c], f[:, c], out=st[:, 2 + c], casting="unsafe")
                mv[:, c] = st[:, 2 + c]
            self.state = st
            ref = self.ref[st.view(np.int32)[:, 0]]
        else:
            for c in range(2):
                mv[:, c] = f[:, c]
            ref = self.prev[src]
        cur = rgba.reshape(n, 4)
        d = cur.astype(np.int16)
        d -= ref.view(np.uint8).reshape(n, 4)
        res = res_out.reshape(n, 3)
        for c in range(3):
            res[:, c] = d[:, c]
        self.prev = rgba.reshape(-1).view(np.uint32)
