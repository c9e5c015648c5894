"""A frame's exported motion vectors from PyAV, as one numpy view.

PyAV before 18.1.1 cached ``frame.side_data`` on the frame, and the container it built
held the frame: a reference cycle that only a full collection freed, so every decoded
frame whose vectors were read stayed allocated (100+ frames, hundreds of MB at
1280x720) and the decoder wrote each new frame into a cache-cold buffer (0.03 ms a
340x256 frame, 0.25 ms a 1280x720 one). PyAV 18.1.1 builds a new container at every
read, the cycle is gone, and the project requires it (``pyproject.toml``);
``tests/test_video_reads.py`` checks that decoded frames do not pile up.
"""
from __future__ import annotations

import numpy as np

#: FFmpeg's AVMotionVector, as PyAV's MotionVectors.to_ndarray gives it (built once here:
#: that method builds the dtype anew for every frame, 12 us of a ~600 us frame)
MV_DTYPE = np.dtype([("source", "int32"), ("w", "uint8"), ("h", "uint8"), ("src_x", "int16"),
                     ("src_y", "int16"), ("dst_x", "int16"), ("dst_y", "int16"),
                     ("flags", "uint64"), ("motion_x", "int32"), ("motion_y", "int32"),
                     ("motion_scale", "uint16")], align=True)


def vectors(frame) -> np.ndarray | None:
    """The frame's exported motion vectors (:data:`MV_DTYPE`, a view of FFmpeg's side
    data: it keeps the frame alive while held), None if it has none."""
    mvs = frame.side_data.get("MOTION_VECTORS")
    return None if mvs is None else np.frombuffer(mvs, MV_DTYPE)
