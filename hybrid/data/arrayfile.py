"""The array cache's file: its format version, the check every reader makes, its splits
and its reader.

:class:`CacheReader` gives the GOPs of a video as stored (uint8 codes). The format is
described, and written, by :mod:`hybrid.data.cache` (``hybrid prepare --store arrays``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hybrid.data.splits import SplitError
from hybrid.video.extract import FormatError, check_format

#: Version of the cache format this code writes and reads (1: float16 MV and int16
#: residuals, before the uint8 codes).
CACHE_VERSION = 2


def key_of(rel: str) -> str:
    return rel.replace("/", "|")


# what a complete cache's root carries (attributes, groups): a file without them is not
# one `hybrid prepare` finished (see check_cache)
HEADER_ATTRS = ("accumulate", "coviar", "size", "mv_bound", "classes")
HEADER_GROUPS = ("splits", "videos")


def check_cache(f, path: str | Path) -> None:
    """:class:`~hybrid.video.extract.FormatError` naming ``path`` and the fix unless the
    open HDF5 file ``f`` is a complete ``hybrid prepare`` cache of :data:`CACHE_VERSION`.
    Every reader of a cache (splits, the dataset, shards) calls it before reading
    anything."""
    again = f"run `hybrid prepare DATA -o {path}` again (delete {path} first)"
    if not len(f.attrs) and not len(f):
        raise FormatError(f"{path}: an empty HDF5 file, not a prepare cache (a `hybrid "
                          f"prepare` that failed before writing?); {again}")
    kind = f.attrs.get("kind")
    if kind is not None and kind != "cache":
        raise FormatError(f"{path}: a `hybrid {kind}` file, not a prepare cache")
    check_format(f, path, CACHE_VERSION)
    if kind is None:
        raise FormatError(f"{path}: a `hybrid extract` file, not a prepare cache")
    missing = ([a for a in HEADER_ATTRS if a not in f.attrs]
               + [f"/{g}" for g in HEADER_GROUPS if g not in f])
    if missing:
        raise FormatError(f"{path}: an incomplete prepare cache (no {', '.join(missing)}); "
                          f"{again}")


class NotInCacheError(ValueError):
    """A video of the cache's splits that the cache does not hold: training and
    evaluation report it and go on without it, as they do for an unreadable video."""


def cache_split(path: Path, split: str, fold: int) -> tuple[list[tuple[str, int]], list[str]]:
    """(items, classes) of ``split`` and ``fold`` as the cache at ``path`` stored them."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise SplitError(f"{path}: cannot open as a `hybrid prepare` cache ({e})") from None
    with f:
        check_cache(f, path)
        classes = [str(c) for c in f.attrs["classes"]]
        name = f"{split}{fold}"
        if name not in f.get("splits", {}):
            have = sorted(f["splits"]) if "splits" in f else []
            raise SplitError(f"{path}: cache has no split {name!r} (has {have})")
        rows = [r.decode() if isinstance(r, bytes) else str(r) for r in f["splits"][name][()]]
    items = [(r.rsplit("\t", 1)[0], int(r.rsplit("\t", 1)[1])) for r in rows]
    return items, classes


class CacheReader:
    """Reads GOPs from a cache; opens the file lazily per process (DataLoader workers)."""

    def __init__(self, path: str | Path) -> None:
        import h5py

        self.path = str(path)
        with h5py.File(self.path, "r") as f:
            check_cache(f, self.path)
            self.attrs = {k: f.attrs[k] for k in ("accumulate", "coviar", "size", "mv_bound")}
        self._f, self._pid = None, None

    def _file(self):
        import h5py

        if self._f is None or self._pid != os.getpid():
            self._f, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._f

    def __getstate__(self):
        return {**self.__dict__, "_f": None, "_pid": None}

    def has(self, rel: str) -> bool:
        return key_of(rel) in self._file()["videos"]

    def num_gops(self, rel: str) -> int:
        return int(self._group(rel)["p_frames"].shape[0])

    def _group(self, rel: str):
        vids = self._file()["videos"]
        if key_of(rel) not in vids:
            raise NotInCacheError(f"{self.path}: no video {rel!r} (skipped by `hybrid "
                                  f"prepare` as unreadable, or prepare not finished)")
        return vids[key_of(rel)]

    def gops(self, rel: str, idx: list[int]) -> dict[str, np.ndarray]:
        """The arrays of GOPs ``idx`` (any order, repeats allowed) of video ``rel``, as
        stored: uint8 codes."""
        g = self._group(rel)
        uniq = sorted(set(idx))
        pos = [uniq.index(i) for i in idx]
        return {k: np.stack([g[k][i] for i in uniq])[pos]
                for k in ("iframe", "mv", "residual", "p_frames")}
