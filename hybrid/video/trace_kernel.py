"""Compiled (numba) kernels of the fast CoViAR path in :mod:`hybrid.video.fields`.

- :func:`paint_cells`: a P-frame's block vectors onto the 8x8 cell grid, packed;
- :func:`trace_accumulated`: CoViAR's accumulated mode, one pass over a P-frame carrying
  the accumulated MV itself as the state (written straight into the int16 output),
  and the residual against the I-frame;
- :func:`trace_step`: the per-frame mode (each P-frame's own field and the residual
  against the previous frame). Pixels are FFmpeg's ``rgb24`` bytes as decoded (the
  reference every path is tested against), read in place (rows may be padded: no copy
  of the frame).

How it is fast (0.48 -> ~0.1 ms a 340x256 frame; measured in ``benchmarks/
video_extract.py``): the field is constant along a row over a run of cells with the
same vector, so work is per run, not per pixel: the in-frame test splits a run into at
most three sub-runs (no vector / vector / no vector), and a residual whose reference
pixels are consecutive (a whole run without accumulation; a segment of the row whose
traced I-frame pixels are consecutive with it, 99 % of neighbours in the benchmark) is
one contiguous byte subtraction that LLVM vectorises. Random fields fall back to
segments of one pixel: correct, slower. Indices are unsigned so numba emits no
negative-index wraparound. Compiled on first use and cached next to this file
(``cache=True``): a new process loads the machine code instead of compiling it.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import as_strided

U = np.uint64


@njit(cache=True, nogil=True)
def paint_cells(vectors, w, cell, cells):  # pragma: no cover - compiled
    """FFmpeg's exported vectors (a structured array with ``source, w, h, src_x, src_y,
    dst_x, dst_y``) -> ``cells`` (hc, wc) int64 packed like ``fields.pack`` (x, y, flat
    offset y * w + x), later blocks of a size over earlier, sizes in (w, h) order like
    ``fields.mv_field`` (a stable sort by size, done as one pass per distinct size: a
    P-frame has one or two). False when a block is off the grid (or there are over
    16 sizes)."""
    hc, wc = cells.shape
    n = vectors.shape[0]
    found = np.empty(16, np.int64)  # the distinct sizes (w * 65536 + h)
    k = 0
    for i in range(n):
        v = vectors[i]
        x0, y0 = np.int64(v.dst_x) - v.w // 2, np.int64(v.dst_y) - v.h // 2
        if (x0 | y0 | np.int64(v.w) | np.int64(v.h)) & (cell - 1):
            if v.source < 0:
                return False
        key = np.int64(v.w) * 65536 + v.h
        j = 0
        while j < k and found[j] != key:
            j += 1
        if j == k:
            if k == found.shape[0]:
                return False  # more sizes than any codec has: the reference painter
            found[k] = key
            k += 1
    for key in np.sort(found[:k]):
        for i in range(n):
            v = vectors[i]
            if v.source >= 0 or np.int64(v.w) * 65536 + v.h != key:
                continue  # a future reference (not in a P-frame), or another size
            ix = np.int64(v.dst_x) - v.src_x
            iy = np.int64(v.dst_y) - v.src_y
            val = ((ix & 0xFFFF) | ((iy & 0xFFFF) << 16)
                   | (((iy * w + ix) & 0xFFFFFFFF) << 32))
            cx0 = (np.int64(v.dst_x) - v.w // 2) // cell
            cy0 = (np.int64(v.dst_y) - v.h // 2) // cell
            for cy in range(max(cy0, 0), min(cy0 + v.h // cell, hc)):
                for cx in range(max(cx0, 0), min(cx0 + v.w // cell, wc)):
                    cells[cy, cx] = val
    return True


@njit(cache=True, nogil=True, inline="always")
def _sub(cur, c0, ref, r0, res, o0, n):  # pragma: no cover - compiled
    """res[o0 : o0 + n] = cur[c0 : c0 + n] - ref[r0 : r0 + n] (bytes -> int, stored as
    res's dtype: int16 or float32, exact in both)."""
    for i in range(U(n)):
        res[o0 + i] = np.int32(cur[c0 + i]) - np.int32(ref[r0 + i])


@njit(cache=True, nogil=True, inline="always")
def _flat(img):  # pragma: no cover - compiled
    """(H, W, 3) uint8 with strides (row, 3, 1) -> the bytes from its first pixel to
    its last, flat (a view: the padding at the end of each row is skipped by index)."""
    n = (img.shape[0] - 1) * img.strides[0] + img.shape[1] * 3
    return as_strided(img, shape=(n,), strides=(1,))


@njit(cache=True, nogil=True, inline="always")
def _run(field, fbase, cx, wf, step, w, h, y):  # pragma: no cover - compiled
    """The run of cells from ``cx`` on row ``y`` that share one vector: (end cell e, its
    pixels [x0, x1), vector (fx, fy), source row sy, and [lo, hi) where the source lies
    in the frame); a vector whose source row is off the frame counts as none."""
    v = field[U(fbase + cx)]
    e = cx + 1
    while e < wf and field[U(fbase + e)] == v:
        e += 1
    x0, x1 = cx * step, min(e * step, w)
    fx = np.int64(np.int16(v & 0xFFFF))
    fy = np.int64(np.int16((v >> 16) & 0xFFFF))
    sy = y - fy
    if sy < 0 or sy >= h:  # source row off the frame: no vector on the run
        fx, fy, sy = 0, 0, y
    lo, hi = max(x0, fx), min(x1, w + fx)  # source x = x - fx in the frame
    if lo >= hi:
        lo, hi = x1, x1
    return e, x0, x1, fx, fy, sy, lo, hi


@njit(cache=True, nogil=True)
def trace_step(cur, ref, field, shift, src0, src1, accumulate, mv,
               res):  # pragma: no cover - compiled
    """cur, ref (H, W, 3) uint8 RGB, strides (row, 3, 1), rows may be padded (FFmpeg's
    rgb24; ref: the I-frame if ``accumulate`` else the previous frame); field
    (ceil(H / 2**shift) * ceil(W / 2**shift),) int64 packed (x in bits 0-15, y in
    16-31); state: src0 (N,) uint32, the I-frame pixel each pixel traces to (x in bits
    0-15, y in 16-31), read, and src1 written (if ``accumulate``); -> mv (2N,) and res
    (3N,) int16 or float32 (integers, exact in both), pixel-major. Accumulated MV =
    p - src (CoViAR)."""
    h, w = cur.shape[0], cur.shape[1]
    cs, rs = cur.strides[0], ref.strides[0]
    cf, rf = _flat(cur), _flat(ref)
    wf = ((w - 1) >> shift) + 1
    step = 1 << shift
    for y in range(h):
        fbase, crow, p0 = (y >> shift) * wf, y * cs, y * w
        cx = 0
        while cx < wf:  # a run of cells with one vector
            e, x0, x1, fx, fy, sy, lo, hi = _run(field, fbase, cx, wf, step, w, h, y)
            cx = e
            for part in range(3):  # [x0, lo) no vector, [lo, hi) vector, [hi, x1) none
                if part == 0:
                    a, b, gx, gy, gsy = x0, lo, 0, 0, y
                elif part == 1:
                    a, b, gx, gy, gsy = lo, hi, fx, fy, sy
                else:
                    a, b, gx, gy, gsy = hi, x1, 0, 0, y
                if a >= b:
                    continue
                if accumulate:  # state and MV now, the residual per row below
                    sbase = gsy * w - gx
                    for x in range(a, b):
                        st = src0[U(sbase + x)]
                        p = U(p0 + x)
                        src1[p] = st
                        mv[U(2) * p] = np.int32(x) - np.int32(st & 0xFFFF)
                        mv[U(2) * p + U(1)] = np.int32(y) - np.int32(st >> 16)
                else:
                    for x in range(a, b):
                        p = U(p0 + x)
                        mv[U(2) * p] = gx
                        mv[U(2) * p + U(1)] = gy
                    _sub(cf, U(crow + 3 * a), rf, U(gsy * rs + 3 * (a - gx)), res,
                         U(3 * (p0 + a)), 3 * (b - a))
        if accumulate:  # residual of the row, per segment of consecutive I-frame pixels
            x = 0
            while x < w:
                s0 = src1[U(p0 + x)]
                e = x + 1
                while e + 16 <= w:  # 16 at a time: a loop without an early exit vectorises
                    ok = True
                    for k in range(16):
                        ok &= src1[U(p0 + e + k)] == s0 + np.uint32(e + k - x)
                    if not ok:
                        break
                    e += 16
                while e < w and src1[U(p0 + e)] == s0 + np.uint32(e - x):
                    e += 1
                q = U(np.int64(s0 >> 16) * rs + 3 * np.int64(s0 & 0xFFFF))
                _sub(cf, U(crow + 3 * x), rf, q, res, U(3 * (p0 + x)), 3 * (e - x))
                x = e


@njit(cache=True, nogil=True, inline="always")
def _copy(src, s0, dst, d0, n):  # pragma: no cover - compiled
    """dst[d0 : d0 + n] = src[s0 : s0 + n] (a loop LLVM vectorises)."""
    for i in range(U(n)):
        dst[d0 + i] = src[s0 + i]


@njit(cache=True, nogil=True, inline="always")
def _moved(src, s0, dst, d0, n, fx, fy):  # pragma: no cover - compiled
    """dst[d0 + i] = src[s0 + i] + (fx, fy), lane-wise on int16 pairs packed in uint32
    words (x in the low lane), wrapping like int16 (a loop LLVM vectorises)."""
    lo, hi = np.uint32(fx & 0xFFFF), np.uint32((fy & 0xFFFF) << 16)
    for i in range(U(n)):
        a = src[s0 + i]
        dst[d0 + i] = (((a + lo) & np.uint32(0xFFFF))
                       | (((a & np.uint32(0xFFFF0000)) + hi) & np.uint32(0xFFFF0000)))


@njit(cache=True, nogil=True)
def trace_accumulated(cur, iframe, field, shift, prev, state, advance, do_res,
                      res):  # pragma: no cover - compiled
    """CoViAR's accumulation carried as the accumulated MV itself: one P-frame.

    cur, iframe (H, W, 3) uint8 RGB, strides (row, 3, 1), rows may be padded (FFmpeg's
    rgb24); field (ceil(H / 2**shift) * ceil(W / 2**shift),) int64 packed (x in bits
    0-15, y in 16-31); prev (N,) uint32: the previous frame's accumulated MV, the int16
    pair (x, y) of each pixel in one word (x in the low lane: the bytes of int16
    (N, 2)), zeros at the I-frame -> state (N,) uint32, this frame's, the same layout
    (it may be the caller's int16 MV output itself, viewed as words), and, if
    ``do_res``, res (3N,) int16 or float32, ``cur[p] - iframe[p - mv[p]]``.

    CoViAR keeps the I-frame pixel each pixel traces to, src_t[p] = src_{t-1}[p - f[p]];
    with mv = p - src that is mv_t[p] = mv_{t-1}[p - f[p]] + f[p]: per run of cells with
    one vector, a shifted copy plus a constant (no separate state, no second pass for
    the MV). Pixels whose source leaves the frame keep mv_{t-1}[p] (no vector). The
    residual goes per segment of equal MV in a row (consecutive I-frame pixels): one
    contiguous subtraction each. ``advance`` False: the residual of ``cur`` against
    ``prev`` as it is (state unused; the field unread): a frame whose outputs are
    asked for once its GOP ended."""
    h, w = cur.shape[0], cur.shape[1]
    cs, rs = cur.strides[0], iframe.strides[0]
    cf, rf = _flat(cur), _flat(iframe)
    wf = ((w - 1) >> shift) + 1
    step = 1 << shift
    mv = state if advance else prev
    for y in range(h):
        p0 = y * w
        cx = 0
        while advance and cx < wf:  # a run of cells with one vector
            fbase = (y >> shift) * wf
            e, x0, x1, fx, fy, sy, lo, hi = _run(field, fbase, cx, wf, step, w, h, y)
            cx = e
            _copy(prev, U(p0 + x0), state, U(p0 + x0), lo - x0)
            _moved(prev, U(sy * w + lo - fx), state, U(p0 + lo), hi - lo, fx, fy)
            _copy(prev, U(p0 + hi), state, U(p0 + hi), x1 - hi)
        if not do_res:
            continue
        crow = y * cs
        x = 0
        while x < w:  # segments of one MV: consecutive I-frame pixels
            m = mv[U(p0 + x)]
            e = x + 1
            while e + 16 <= w:  # 16 at a time: a loop without an early exit vectorises
                ok = True
                for k in range(16):
                    ok &= mv[U(p0 + e + k)] == m
                if not ok:
                    break
                e += 16
            while e < w and mv[U(p0 + e)] == m:
                e += 1
            mx = np.int64(np.int16(m & 0xFFFF))
            my = np.int64(np.int16(m >> 16))
            q = U((y - my) * rs + 3 * (x - mx))
            _sub(cf, U(crow + 3 * x), rf, q, res, U(3 * (p0 + x)), 3 * (e - x))
            x = e
