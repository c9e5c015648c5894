"""Compressed-domain video: MPEG-4 Part 2 I-frames, motion vectors and residuals via PyAV."""
