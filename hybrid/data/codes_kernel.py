"""Compiled table lookup for :meth:`hybrid.data.transforms.Normalization.codes`
(numba, cached next to this file like :mod:`hybrid.video.trace_kernel`)."""
from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def lookup(x, table, out):  # pragma: no cover - compiled
    """out[i] = table[x[i]]: x (N,) uint16, table (65536,) uint8, out (N,) uint8."""
    for i in range(x.shape[0]):
        out[i] = table[x[i]]
