"""What DATA names: the one place that tells a dataset folder from the stores ``hybrid
prepare`` writes (an HDF5 cache, a folder of shard caches, a video cache), and reads the
splits of whichever it is.

A dataset folder's splits come from its annotation files (:mod:`hybrid.data.splits`); a
store carries the splits it was made from.
"""
from __future__ import annotations

from pathlib import Path

from hybrid.data import splits
from hybrid.data.arrayfile import cache_split
from hybrid.data.shards import is_shard_folder, shard_folds, shard_split
from hybrid.data.splits import SplitError
from hybrid.data.videocache import read_header, videocache_split

STORES = ("cache", "videocache", "shards")


def detect_layout(root: str | Path) -> str:
    """'cache', 'videocache', 'shards', or a dataset folder's annotation layout
    ('ucf101', 'hmdb51', 'kinetics', 'ssv2', 'folder')."""
    root = Path(root)
    if root.is_file() and root.suffix in (".h5", ".hdf5"):
        return "cache"
    if not root.is_dir():
        raise SplitError(f"{root}: no such dataset folder or cache file")
    if (root / "videocache.json").is_file():
        return "videocache"
    layout = splits.detect_layout(root)
    if layout == "folder" and is_shard_folder(root):
        return "shards"
    return layout


def load_split(root: str | Path, split: str = "train", fold: int = 1,
               test_every: int = 4) -> tuple[list[tuple[str, int]], list[str]]:
    """(items, classes) of ``split`` ('train' or 'test') and ``fold`` (1-based) of DATA:
    a dataset folder or any store ``hybrid prepare`` writes."""
    if split not in ("train", "test"):
        raise SplitError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    layout = detect_layout(root)
    if layout == "videocache":
        return videocache_split(root, split, fold)
    if layout in ("cache", "shards"):
        items, classes = (cache_split if layout == "cache" else shard_split)(root, split, fold)
        splits.check_entries(root, items, classes)  # labels that are classes
        return items, classes
    return splits.load_split(root, split, fold, test_every)


def available_folds(root: str | Path) -> list[int]:
    """Folds DATA has splits for (1..3 for UCF-101/HMDB-51, [1] for a folder)."""
    layout = detect_layout(root)
    if layout == "shards":
        return shard_folds(root)
    if layout == "videocache":
        return sorted({int(n[5:]) for n in read_header(root)["splits"] if n[:5] == "train"})
    if layout == "cache":
        return [1]
    return splits.available_folds(root)
