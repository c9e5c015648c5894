"""Per-pixel motion fields from FFmpeg's exported block vectors, and the per-GOP tracers
that turn them into MV and residual, accumulated back to the I-frame (CoViAR) or not.
See ``hybrid.video.reader`` for the definitions.

Two implementations of CoViAR's integer-pixel mode: :func:`mv_field` + :class:`Tracer`
(the reference, any block layout, also the sub-pixel mode), and :func:`grid_cells` +
:class:`FastTracer` (MPEG-4: blocks on the 8-pixel grid, so the field is painted per
8x8 cell and never expanded; accumulation carries the accumulated MV itself,
the I-frame pixel each pixel traces to, and the residual gathers the ``rgb24`` pixels
FFmpeg converted, all in one compiled pass a frame: :mod:`hybrid.video.trace_kernel`).
:func:`grid_field` expands the cells per pixel (for tests and the per-pixel path).
Tests check both give identical results.
"""
from __future__ import annotations

from functools import lru_cache

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


def grid_cells(vectors: np.ndarray | None, h: int, w: int) -> np.ndarray | None:
    """CoViAR's field per 8x8 cell, (ceil(H/8), ceil(W/8)) int64 packed by :func:`pack`,
    before dropping pixels whose source leaves the frame; None when a block is off the
    8-pixel grid (then pack the output of :func:`mv_field`)."""
    from hybrid.video.trace_kernel import paint_cells

    cells = np.zeros((-(-h // CELL), -(-w // CELL)), np.int64)  # (hc, wc)
    if vectors is None or len(vectors) == 0:
        return cells
    return cells if paint_cells(vectors, w, CELL, cells) else None


def grid_field(vectors: np.ndarray | None, h: int, w: int) -> np.ndarray | None:
    """CoViAR's per-pixel field painted per 8x8 cell, as (H, W) int64 packed by
    :func:`pack`; None when a block is off the 8-pixel grid (then pack the output of
    :func:`mv_field`). (The reader's tracer takes :func:`grid_cells` directly.)"""
    cells = grid_cells(vectors, h, w)
    if cells is None:
        return None
    hc, wc = cells.shape
    rows = np.repeat(cells, CELL, axis=1)[:, :w]  # (hc, W)
    field = np.ascontiguousarray(  # each cell row repeated 8 times: (H, W)
        np.broadcast_to(rows[:, None, :], (hc, CELL, w)).reshape(hc * CELL, w)[:h])
    m = int(np.abs(unpack(cells)).max(initial=0))
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


@lru_cache(maxsize=4)
def _identity(h: int, w: int) -> np.ndarray:
    """(H * W,) uint32 ``y << 16 | x`` of every pixel (read-only; one per frame size)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.uint32)
    ident = ((yy << 16) | xx).reshape(-1)
    ident.flags.writeable = False
    return ident


def _check_rgb(img: np.ndarray, h: int, w: int, what: str) -> None:
    shape, strides = img.shape, img.strides
    assert shape[0] == h and shape[1] == w and shape[2] == 3 and img.dtype == _U8 \
        and strides[2] == 1 and strides[1] == 3 and strides[0] >= 3 * w, (
        f"{what} {img.shape} {img.dtype} strides {img.strides} must be ({h}, {w}, 3) "
        f"uint8 with packed pixels (rows may be padded)")


class FastTracer:
    """CoViAR integer-pixel mode on FFmpeg's ``rgb24`` frames; writes into
    caller-provided outputs; one compiled pass a frame. Accumulated: the state is the
    accumulated MV itself, int16 (x, y) pairs packed in uint32 words, traced into the
    caller's int16 MV output when there is one (no copy) or into a scratch buffer
    (:func:`hybrid.video.trace_kernel.trace_accumulated`); per frame: the field and the
    previous frame (:func:`hybrid.video.trace_kernel.trace_step`). Frames may have
    padded rows (as FFmpeg converts them): they are read in place."""

    def __init__(self, iframe: np.ndarray, accumulate: bool) -> None:
        h, w = iframe.shape[:2]
        _check_rgb(iframe, h, w, "I-frame")
        if not (h < 1 << 15 and w < 1 << 15):
            raise ValueError(f"frame {h}x{w} too large for 16-bit MV")
        self.h, self.w, self.n, self.accumulate = h, w, h * w, accumulate
        self.ref = iframe
        self.prev = iframe
        if accumulate:
            self.mv = np.zeros(self.n, np.uint32)  # (N,) accumulated MV, int16 pairs
            self.scratch: list[np.ndarray] = []
        else:
            self.src = _identity(h, w).copy()  # unused without accumulation
            self.spare = np.empty_like(self.src)

    def step(self, rgb: np.ndarray | None, field: np.ndarray, mv_out: np.ndarray | None,
             res_out: np.ndarray | None, cell: int = 1) -> None:
        """rgb (H, W, 3) uint8 (rows may be padded), field packed by :func:`pack`, per
        pixel (H, W) with ``cell=1`` or per cell from :func:`grid_cells` with
        ``cell=CELL`` -> mv_out (H, W, 2) and res_out (H, W, 3), contiguous, both float32
        or both int16 (the values are integers: exact in either). Accumulated mode: an
        output given as None is not written (a frame the consumer does not read; the
        trace still advances), and ``rgb`` is read only for ``res_out``. An int16
        ``mv_out`` holds the trace until the next step: leave it unchanged till then."""
        from hybrid.video.trace_kernel import trace_accumulated, trace_step

        h, w = self.h, self.w
        if rgb is not None:
            _check_rgb(rgb, h, w, "frame")
        if cell != CELL and cell != 1:
            raise ValueError(f"cell must be 1 or {CELL}, got {cell}")
        if field.dtype != np.int64 or field.shape != (-(-h // cell), -(-w // cell)):
            raise ValueError(f"field {field.dtype} {field.shape} does not match the "
                             f"{h}x{w} frame at cell {cell}")
        self._check_outputs(mv_out, res_out)
        field = field.reshape(-1)  # a view when contiguous (grid_cells'), else a copy
        if not self.accumulate:
            if rgb is None or mv_out is None or res_out is None:
                raise ValueError("per-frame mode needs every frame's pixels and both outputs")
            trace_step(rgb, self.prev, field, cell.bit_length() - 1, self.src, self.spare,
                       False, mv_out.reshape(-1), res_out.reshape(-1))
            self.prev = rgb
            return
        # traced in place into an int16 MV output, unless it holds the trace it reads
        in_place = (mv_out is not None and mv_out.dtype == np.int16
                    and not np.may_share_memory(mv_out, self.mv))
        state = mv_out.reshape(-1).view(np.uint32) if in_place else self._scratch()
        do_res = res_out is not None
        trace_accumulated(rgb if do_res else self.ref, self.ref, field, cell.bit_length() - 1,
                          self.mv, state, True, do_res,
                          res_out.reshape(-1) if do_res else _NO_RES)
        self.mv = state
        if mv_out is not None and not in_place:
            mv_out[...] = state.view(np.int16).reshape(h, w, 2)

    def emit(self, rgb: np.ndarray | None, mv_out: np.ndarray | None,
             res_out: np.ndarray | None) -> None:
        """The last traced frame's outputs (accumulated mode), from the trace as it
        stands: for a frame :meth:`step` passed over without outputs and that turned
        out to be read (the last P-frame of a GOP, known once the GOP ends). ``rgb``:
        that frame's pixels (needed for ``res_out`` only)."""
        from hybrid.video.trace_kernel import trace_accumulated

        if not self.accumulate:
            raise ValueError("emit needs accumulated mode (the trace is its state)")
        self._check_outputs(mv_out, res_out)
        if res_out is not None:
            if rgb is None:
                raise ValueError("a residual needs the frame's pixels")
            _check_rgb(rgb, self.h, self.w, "frame")
            trace_accumulated(rgb, self.ref, _NO_FIELD, 0, self.mv, self.mv, False, True,
                              res_out.reshape(-1))
        if mv_out is not None:
            mv_out[...] = self.mv.view(np.int16).reshape(self.h, self.w, 2)

    def _scratch(self) -> np.ndarray:
        """A (N,) uint32 buffer that is not the current trace."""
        for b in self.scratch:
            if b is not self.mv:
                return b
        self.scratch.append(np.empty(self.n, np.uint32))
        return self.scratch[-1]

    def _check_outputs(self, mv_out, res_out) -> None:
        h, w = self.h, self.w
        ok = True
        for a, c in ((mv_out, 2), (res_out, 3)):
            if a is not None:
                ok = ok and a.shape == (h, w, c) and a.flags.c_contiguous \
                    and a.dtype in _OUT_DTYPES
        if ok and mv_out is not None and res_out is not None:
            ok = mv_out.dtype == res_out.dtype
        if not ok:
            raise ValueError(
                f"outputs {getattr(mv_out, 'shape', None)} {getattr(mv_out, 'dtype', None)}, "
                f"{getattr(res_out, 'shape', None)} {getattr(res_out, 'dtype', None)} must "
                f"be contiguous, both float32 or both int16, ({h}, {w}, 2|3)")


_OUT_DTYPES = (np.dtype(np.float32), np.dtype(np.int16))
_U8 = np.dtype(np.uint8)
_NO_FIELD = np.zeros(1, np.int64)  # emit() reads no field
_NO_RES = np.zeros(0, np.int16)  # a residual not written
