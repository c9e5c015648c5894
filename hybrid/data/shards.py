"""Sharded preparation: ``hybrid prepare DATA --store arrays -o SHARD.h5 --shard K/N``
extracts the K-th of N disjoint, deterministic, balanced parts of a dataset
(:func:`hybrid.data.partition.assign_shards`, whatever machine or order it is prepared
in), so a job array prepares a large set (Kinetics) in parallel. A folder holding the N
shard caches reads as one dataset: the splits and classes (every shard stores the whole
dataset's) from the shards, which must agree, and each video from the shard holding it
(an empty shard is a valid one).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybrid.data.arrayfile import CacheReader, cache_split, check_cache, key_of
from hybrid.data.splits import SplitError
from hybrid.video.extract import FORMAT


def _caches(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".h5", ".hdf5") and p.is_file())


def is_shard_folder(folder: Path) -> bool:
    """True when ``folder`` holds at least one ``hybrid prepare`` cache file."""
    import h5py

    for p in _caches(folder):
        try:
            with h5py.File(p, "r") as f:
                return f.attrs.get("format") == FORMAT and f.attrs.get("kind") == "cache"
        except OSError:
            continue
    return False


def shard_files(folder: str | Path) -> tuple[list[Path], int]:
    """The cache files of a shard folder ordered by K, and N; raises SplitError naming
    the folder when they are not exactly shards 1..N of one preparation."""
    import h5py

    folder = Path(folder)
    found: dict[int, Path] = {}
    ns, modes, schemes = set(), {}, {}
    for p in _caches(folder):
        with h5py.File(p, "r") as f:
            if f.attrs.get("format") != FORMAT or f.attrs.get("kind") != "cache":
                raise SplitError(f"{folder}: {p.name} is not a `hybrid prepare` cache")
            check_cache(f, p)  # its version, and a complete header
            k, n = (int(v) for v in f.attrs.get("shard", (0, 0)))
            schemes[p.name] = int(f.attrs.get("shard_scheme", 1))
            modes[p.name] = (bool(f.attrs["accumulate"]), bool(f.attrs["coviar"]),
                             tuple(int(v) for v in f.attrs["size"]),
                             float(f.attrs["mv_bound"]))  # check_cache: present
        k, n = (1, 1) if n == 0 else (k, n)  # an unsharded cache is the only part
        if k in found:
            raise SplitError(f"{folder}: {found[k].name} and {p.name} are both part "
                             f"{k}/{n}")
        found[k] = p
        ns.add(n)
    if len(ns) != 1:
        raise SplitError(f"{folder}: shards of different splittings (N = "
                         f"{', '.join(map(str, sorted(ns)))}) in one folder")
    (n,) = ns
    lacking = sorted(set(range(1, n + 1)) - set(found))
    if lacking:
        raise SplitError(f"{folder}: shard(s) {', '.join(f'{k}/{n}' for k in lacking)} "
                         f"missing (has {', '.join(p.name for p in found.values())})")
    if n > 1 and len(set(schemes.values())) != 1:
        raise SplitError(f"{folder}: shards of different assignments of videos to parts "
                         f"(schemes {schemes}); prepare them again with one version")
    if len(set(modes.values())) != 1:
        raise SplitError(f"{folder}: shards made with different settings "
                         f"(accumulate, coviar, size): {modes}")
    return [found[k] for k in sorted(found)], n


def shard_split(folder: str | Path, split: str, fold: int):
    """(items, classes) of a shard folder: the same in every shard (checked)."""
    files, _ = shard_files(folder)
    first = cache_split(files[0], split, fold)
    for p in files[1:]:
        if cache_split(p, split, fold) != first:
            raise SplitError(f"{folder}: {p.name} and {files[0].name} hold different "
                             f"{split} splits or classes (shards of different datasets?)")
    return first


def shard_folds(folder: str | Path) -> list[int]:
    import h5py

    files, _ = shard_files(folder)
    with h5py.File(files[0], "r") as f:
        return sorted({int(k[5:]) for k in f.get("splits", {}) if k.startswith("train")})


class ShardedCacheReader:
    """:class:`~hybrid.data.arrayfile.CacheReader`'s interface over a shard folder: each
    video is read from the shard that holds it (listed once, when opened)."""

    def __init__(self, folder: str | Path) -> None:
        import h5py

        files, self.n = shard_files(folder)
        self.path = str(folder)
        self.readers = [CacheReader(p) for p in files]
        self.attrs = self.readers[0].attrs
        self._where: dict[str, int] = {}
        for i, p in enumerate(files):
            with h5py.File(p, "r") as f:
                self._where.update(dict.fromkeys(f["videos"], i))

    def _reader(self, rel: str) -> CacheReader:
        return self.readers[self._where.get(key_of(rel), 0)]

    def has(self, rel: str) -> bool:
        return self._reader(rel).has(rel)

    def num_gops(self, rel: str) -> int:
        return self._reader(rel).num_gops(rel)

    def gops(self, rel: str, idx: list[int]) -> dict[str, np.ndarray]:
        return self._reader(rel).gops(rel, idx)
