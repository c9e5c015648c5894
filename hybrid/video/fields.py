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


def grid_field(vectors: np.ndarray | None, h: int, w: int) -> np.ndarray | None:
    """CoViAR's per-pixel field, (H, W, 2) int16 ``dst - src``, painted per 8x8 cell;
    None when a block is off the 8-pixel grid (then use :func:`mv_field`)."""
    hc, wc = -(-h // CELL), -(-w // CELL)
    cells = np.zeros((hc, wc, 2), np.int16)
    if vectors is not None and len(vectors):
        v = vectors[vectors["source"] < 0]
        bw, bh = v["w"].astype(np.int32), v["h"].astype(np.int32)
        x0 = v["dst_x"].astype(np.int32) - bw // 2
        y0 = v["dst_y"].astype(np.int32) - bh // 2
        if ((x0 | y0 | bw | bh) & (CELL - 1)).any():
            return None
        ix = (v["dst_x"] - v["src_x"]).astype(np.int16)
        iy = (v["dst_y"] - v["src_y"]).astype(np.int16)
        for nx, ny in sorted(set(zip((bw // CELL).tolist(), (bh // CELL).tolist()))):
            sel = (bw == nx * CELL) & (bh == ny * CELL)
            for i in range(ny):
                for j in range(nx):
                    cy, cx = y0[sel] // CELL + i, x0[sel] // CELL + j
                    ok = (cy >= 0) & (cy < hc) & (cx >= 0) & (cx < wc)
                    cells[cy[ok], cx[ok], 0] = ix[sel][ok]
                    cells[cy[ok], cx[ok], 1] = iy[sel][ok]
        m = int(max(np.abs(ix).max(initial=0), np.abs(iy).max(initial=0)))
    else:
        m = 0
    field = np.broadcast_to(cells[:, None, :, None, :], (hc, CELL, wc, CELL, 2))
    field = np.ascontiguousarray(field.reshape(hc * CELL, wc * CELL, 2)[:h, :w])
    if m:  # pixels whose source leaves the frame get no vector: only near the border
        for axis, size in ((1, w), (0, h)):
            k = min(m, size)
            for band in (slice(0, k), slice(size - k, size)):
                sl = (slice(None), band) if axis == 1 else (band, slice(None))
                pos = np.arange(size)[band]
                pos = pos[None, :] if axis == 1 else pos[:, None]
                src = pos - field[sl + (1 - axis,)]  # x for the column band, y for rows
                bad = (src < 0) | (src >= size)
                if bad.any():
                    sub = field[sl]
                    sub[bad] = 0
    return field


class FastTracer:
    """CoViAR integer-pixel mode on RGBA frames; writes into caller-provided outputs."""

    def __init__(self, iframe_rgba: np.ndarray, accumulate: bool) -> None:
        h, w, _ = iframe_rgba.shape
        self.h, self.w, self.n, self.accumulate = h, w, h * w, accumulate
        self.ref = iframe_rgba.reshape(-1).view(np.uint32)  # (N,) packed RGBA
        self.prev = self.ref
        self.idx = np.arange(h * w, dtype=np.int32)
        self.acc_src = self.idx  # flat accu_src: pixel of the I-frame each pixel traces to
        self.acc_mv = np.zeros((h * w, 2), np.int16)  # accumulated MV, packed (x, y)

    def step(self, rgba: np.ndarray, field: np.ndarray, mv_out: np.ndarray,
             res_out: np.ndarray) -> None:
        """rgba (H, W, 4) uint8 contiguous, field (H, W, 2) int16 -> mv_out (H, W, 2) and
        res_out (H, W, 3) float32."""
        n, w = self.n, self.w
        f = field.reshape(n, 2)
        src = self.idx - (f[:, 1].astype(np.int32) * w + f[:, 0])
        if self.accumulate:
            self.acc_src = self.acc_src[src]
            acc = self.acc_mv.reshape(-1).view(np.uint32)[src].view(np.int16).reshape(n, 2)
            acc += f
            self.acc_mv = acc
            mv_out.reshape(n, 2)[...] = acc
            ref = self.ref[self.acc_src]
        else:
            mv_out.reshape(n, 2)[...] = f
            ref = self.prev[src]
        cur = rgba.reshape(n, 4)
        np.subtract(cur[:, :3], ref.view(np.uint8).reshape(n, 4)[:, :3],
                    out=res_out.reshape(n, 3), dtype=np.float32)
        self.prev = rgba.reshape(-1).view(np.uint32)
