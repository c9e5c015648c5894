"""Which of N disjoint parts of a dataset a video belongs to (``hybrid prepare --shard
K/N``), and the part a cache file records.

The parts are dealt from the dataset's whole list of videos (every split's, as the
annotations list them, those missing on disk included): sorted by path, the i-th video goes to
part ``1 + i % N``. So every part holds ``floor(V / N)`` or ``ceil(V / N)`` of the ``V``
videos (none empty while ``V >= N``), a class's clips are spread over the parts, and the
parts are the same on any machine and in any order. Assignment scheme 2: scheme 1 (no
``shard_scheme`` recorded) was ``crc32(path) % N``, which put a class whose clips differ
only in a counter (``x_000.avi``..``x_003.avi``, UCF's ``_c01``..``_c07``) whole into one
part and left others empty; a shard cache of scheme 1 is refused for resuming.
"""
from __future__ import annotations

from collections.abc import Iterable

SCHEME = 2  # the assignment of videos to parts (recorded in a shard cache)


def assign_shards(rels: Iterable[str], n: int) -> dict[str, int]:
    """{relative path: its part 1..n} for the dataset's videos ``rels`` (any order)."""
    if n < 1:
        raise ValueError(f"N must be >= 1, got {n}")
    return {rel: 1 + i % n for i, rel in enumerate(sorted(set(rels)))}


def check_shard(f, shard: tuple[int, int] | None) -> None:
    """Record ``shard`` (K, N) and the assignment scheme in a new cache file ``f``, or
    check a resumed one's (a shard of another scheme holds other videos: refused)."""
    want = [0, 0] if shard is None else list(shard)
    if "shard" in f.attrs:
        have = [int(v) for v in f.attrs["shard"]]
        if have != want:
            def fmt(s):
                return "the whole dataset" if s == [0, 0] else f"shard {s[0]}/{s[1]}"
            raise ValueError(f"{f.filename}: cache holds {fmt(have)}, asked for {fmt(want)}; "
                             f"use another output file")
        scheme = int(f.attrs.get("shard_scheme", 1))
        if shard is not None and scheme != SCHEME:
            raise ValueError(f"{f.filename}: a shard of an earlier version's assignment "
                             f"(crc32 of the path, scheme {scheme}); this version deals "
                             f"videos to shards by scheme {SCHEME}: prepare every shard "
                             "into new files")
    else:
        f.attrs["shard"] = want
        if shard is not None:
            f.attrs["shard_scheme"] = SCHEME
