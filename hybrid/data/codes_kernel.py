"""Compiled table lookups: :meth:`hybrid.data.transforms.Normalization.codes` over whole
arrays, and a sample's crop coded, padded and transposed in one pass for the Dataset
(numba, cached next to this file like :mod:`hybrid.video.trace_kernel`)."""
from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def lookup(x, table, out):  # pragma: no cover - compiled
    """out[i] = table[x[i]]: x (N,) uint16, table (65536,) uint8, out (N,) uint8."""
    for i in range(x.shape[0]):
        out[i] = table[x[i]]


@njit(cache=True, nogil=True)
def crop_codes(x, p_frames, table, top, left, ch, cw, zero, out):  # pragma: no cover
    """One modality of a sample in one pass: crop, code, pad and transpose.

    x (S, 11, H, W, C) uint16 (int16 values viewed so) or uint8 codes; table: the code
    of each value (65536 or 256 entries); out (S, 11, C, M, M) uint8, M >= ch, cw.
    out[k, j, c, y, i] = table[x[k, min(j, p - 1), top + y, left + i, c]] with
    p = p_frames[k] (a short GOP repeats its last P-frame); all ``zero`` when p == 0.
    The rest of ``out`` (outside the ch x cw corner) is left as it is."""
    # row by row: each crop row is read once, contiguously, for all C channels (a
    # channel-outer order read every row C times at stride C: 22 % slower at 340x256)
    n_ch = x.shape[4]
    for k in range(x.shape[0]):
        p = p_frames[k]
        for j in range(x.shape[1]):
            if p <= 0:
                for c in range(n_ch):
                    for y in range(ch):
                        for i in range(cw):
                            out[k, j, c, y, i] = zero
                continue
            src = min(j, p - 1)
            for y in range(ch):
                row = x[k, src, top + y, left:left + cw]
                for c in range(n_ch):
                    o = out[k, j, c, y]
                    for i in range(cw):
                        o[i] = table[row[i, c]]
