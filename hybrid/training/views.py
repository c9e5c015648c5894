"""Evaluation views "S x C": S segments sampled uniformly over the video and C spatial
crops (1: centre; 3: start, centre, end of the longer side; 5: four corners and centre),
as TSN and CoViAR evaluate. Kept free of torch so the CLI can parse views instantly."""
from __future__ import annotations

CROPS = (1, 3, 5)


def parse_views(text: str) -> tuple[int, int]:
    """"SxC" (e.g. "8x1") -> (segments, crops); ValueError naming the text otherwise."""
    try:
        s, c = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"expected SEGMENTSxCROPS like 8x1, got {text!r}") from None
    if s < 1 or c not in CROPS:
        raise ValueError(f"segments must be >= 1 and crops one of {CROPS}, got {text}")
    return s, c
