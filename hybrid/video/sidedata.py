"""A frame's exported motion vectors from PyAV without keeping the frame alive.

PyAV (18.1) caches ``frame.side_data`` on the frame, and the container it builds holds
the frame: a reference cycle, freed only by a full collection of the cycle collector
(measured: the young generations never free it; a full collection takes ~170 ms in a
process with torch loaded, so it runs rarely). Every decoded frame whose side data was
read stayed allocated until then, 100+ frames at once (hundreds of MB at 1280x720),
and the decoder wrote each new frame into a cache-cold buffer instead of the one just
released: 0.03 ms a 340x256 frame, 0.25 ms a 1280x720 one (``benchmarks/
video_extract.py``'s synthetic videos, against 0.16 / 1.33 ms for decoding alone).
PyAV-Org/PyAV#2206 is the same kind of cycle elsewhere in PyAV.

:func:`vectors` reads the vectors and then sets the frame's cached container back to
None (what the attribute holds before the first read; the property builds a new one
if read again), through the C object: the container's slot is found by its address
among the frame object's words and checked at every use, so the container and its
vectors (which hold the frame) are freed by reference counting once dropped. Where the
slot is not found (another PyAV layout) nothing is changed: the cycle stays, as
before (``tests/test_video_reads.py`` checks that frames do not pile up).
"""
from __future__ import annotations

import ctypes

import numpy as np

#: FFmpeg's AVMotionVector, as PyAV's MotionVectors.to_ndarray gives it (built once here:
#: that method builds the dtype anew for every frame, 12 us of a ~600 us frame)
MV_DTYPE = np.dtype([("source", "int32"), ("w", "uint8"), ("h", "uint8"), ("src_x", "int16"),
                     ("src_y", "int16"), ("dst_x", "int16"), ("dst_y", "int16"),
                     ("flags", "uint64"), ("motion_x", "int32"), ("motion_y", "int32"),
                     ("motion_scale", "uint16")], align=True)

_incref, _decref = ctypes.pythonapi.Py_IncRef, ctypes.pythonapi.Py_DecRef
_incref.argtypes = _decref.argtypes = [ctypes.py_object]
_WORD = ctypes.sizeof(ctypes.c_ssize_t)
_slot: dict[type, int | None] = {}  # frame type -> word index of its side-data cache


def vectors(frame) -> np.ndarray | None:
    """The frame's exported motion vectors (:data:`MV_DTYPE`, a view of FFmpeg's side
    data: it keeps the frame alive while held), None if it has none."""
    sd = frame.side_data
    mvs = sd.get("MOTION_VECTORS")
    out = None if mvs is None else np.frombuffer(mvs, MV_DTYPE)
    _uncache(frame, sd)
    return out


def _uncache(frame, container) -> bool:
    """Drop ``frame``'s reference to its side-data ``container`` (the cycle); False if
    the slot holding it is not found (nothing changed)."""
    words = (ctypes.c_ssize_t * (type(frame).__basicsize__ // _WORD)).from_address(id(frame))
    i = _slot.get(type(frame))
    if i is None or words[i] != id(container):
        # words 0 and 1 are the reference count and the type
        i = next((k for k in range(2, len(words)) if words[k] == id(container)), None)
        _slot[type(frame)] = i
        if i is None:
            return False
    _incref(None)
    words[i] = id(None)
    _decref(container)  # the frame's reference, now gone (the caller still holds one)
    return True
