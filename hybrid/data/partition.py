"""Which of N disjoint parts of a dataset a video belongs to (``hybrid prepare --shard
K/N``), and the part a cache file records."""
from __future__ import annotations

import zlib


def shard_of(rel: str, n: int) -> int:
    """The part (1..n) the video at relative path ``rel`` belongs to."""
    return 1 + zlib.crc32(rel.encode("utf-8")) % n


def check_shard(f, shard: tuple[int, int] | None) -> None:
    """Record ``shard`` (K, N) in a new cache file ``f`` or check a resumed one's."""
    want = [0, 0] if shard is None else list(shard)
    if "shard" in f.attrs:
        have = [int(v) for v in f.attrs["shard"]]
        if have != want:
            def fmt(s):
                return "the whole dataset" if s == [0, 0] else f"shard {s[0]}/{s[1]}"
            raise ValueError(f"{f.filename}: cache holds {fmt(have)}, asked for {fmt(want)}; "
                             f"use another output file")
    else:
        f.attrs["shard"] = want
