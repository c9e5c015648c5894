"""Compiled (numba) kernels of the fast CoViAR path in :mod:`hybrid.video.fields`.

- :func:`paint_cells`: a P-frame's block vectors onto the 8x8 cell grid, packed;
- :func:`trace_step`: one fused pass over the frame doing what took numpy six: read the
  packed per-cell (or per-pixel) field, drop vectors whose source leaves the frame,
  gather and accumulate the per-pixel state, and write MV and residual straight into
  the float32 outputs. Pixels are FFmpeg's ``rgb24`` bytes as decoded (the reference
every path is tested against), read three bytes a pixel.
Indices are unsigned so numba emits no negative-index wraparound (a third of the time).
Compiled on first use and cached next to this file (``cache=True``): a new process
loads the machine code instead of compiling it.
"""
from __future__ import annotations

import numpy as np
from numba import njit

U = np.uint64


@njit(cache=True, nogil=True)
def paint_cells(source, bw, bh, src_x, src_y, dst_x, dst_y, w, cell,
                cells):  # pragma: no cover - compiled
    """FFmpeg's exported vector columns -> ``cells`` (hc, wc) int64 packed like
    ``fields.pack`` (x, y, flat offset y * w + x), later blocks of a size over earlier,
    sizes in (w, h) order like ``fields.mv_field``. False when a block is off the grid."""
    hc, wc = cells.shape
    n = source.shape[0]
    key = np.empty(n, np.int64)
    for i in range(n):
        x0, y0 = np.int64(dst_x[i]) - bw[i] // 2, np.int64(dst_y[i]) - bh[i] // 2
        if (x0 | y0 | np.int64(bw[i]) | np.int64(bh[i])) & (cell - 1):
            if source[i] < 0:
                return False
        key[i] = np.int64(bw[i]) * 65536 + bh[i]
    for i in np.argsort(key, kind="mergesort"):
        if source[i] >= 0:  # future reference: not in a P-frame
            continue
        ix = np.int64(dst_x[i]) - src_x[i]
        iy = np.int64(dst_y[i]) - src_y[i]
        val = (ix & 0xFFFF) | ((iy & 0xFFFF) << 16) | (((iy * w + ix) & 0xFFFFFFFF) << 32)
        cx0 = (np.int64(dst_x[i]) - bw[i] // 2) // cell
        cy0 = (np.int64(dst_y[i]) - bh[i] // 2) // cell
        for cy in range(max(cy0, 0), min(cy0 + bh[i] // cell, hc)):
            for cx in range(max(cx0, 0), min(cx0 + bw[i] // cell, wc)):
                cells[cy, cx] = val
    return True


@njit(cache=True, nogil=True)
def trace_step(cur, ref, field, shift, src0, src1, accumulate, mv, res, h,
               w):  # pragma: no cover - compiled
    """cur, ref (3N,) uint8 RGB pixels, pixel-major (FFmpeg's rgb24; ref: the I-frame
    if ``accumulate`` else the previous frame); field (ceil(H / 2**shift) *
    ceil(W / 2**shift),) int64 packed (x in bits 0-15, y in 16-31); state: src0 (N,)
    uint32, the I-frame pixel each pixel traces to (x in bits 0-15, y in 16-31), read,
    and src1 written (if ``accumulate``); -> mv (2N,) and res (3N,) float32,
    pixel-major. Accumulated MV = p - src (CoViAR)."""
    wc = U(((w - 1) >> shift) + 1)
    for y in range(h):
        frow = U(y >> shift) * wc
        for x in range(w):
            v = field[frow + U(x >> shift)]
            fx = np.int32(np.int16(v & 0xFFFF))
            fy = np.int32(np.int16((v >> 16) & 0xFFFF))
            sx, sy = x - fx, y - fy
            if sx < 0 or sx >= w or sy < 0 or sy >= h:  # source off the frame: no vector
                fx, fy, sx, sy = 0, 0, x, y
            p = U(y * w + x)
            s = U(sy * w + sx)
            if accumulate:
                st = src0[s]
                src1[p] = st
                ax, ay = np.int32(st & 0xFFFF), np.int32(st >> 16)
                fx, fy = x - ax, y - ay
                a = U(ay * w + ax)
            else:
                a = s
            mv[U(2) * p] = fx
            mv[U(2) * p + U(1)] = fy
            p3, a3 = U(3) * p, U(3) * a
            res[p3] = np.int32(cur[p3]) - np.int32(ref[a3])
            res[p3 + U(1)] = np.int32(cur[p3 + U(1)]) - np.int32(ref[a3 + U(1)])
            res[p3 + U(2)] = np.int32(cur[p3 + U(2)]) - np.int32(ref[a3 + U(2)])
