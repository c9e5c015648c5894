"""Train/test splits of action datasets: UCF-101, HMDB-51, folder-per-class, and the
HDF5 cache written by ``hybrid prepare`` (which stores the splits it was made from).

Items are ``(relative path, label)`` with the path relative to the dataset root, POSIX
style (``Class/video.avi``), and labels 0-based; ``classes[label]`` is the class name.

- UCF-101: ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt`` (``Class/v.avi 1``,
  1-based label), ``testlist0N.txt`` (``Class/v.avi``), in the root or in
  ``ucfTrainTestlist/``; videos under ``root/Class/``.
- HMDB-51: ``<class>_test_split<N>.txt`` with lines ``video.avi 1|2|0`` (1 train, 2 test,
  0 unused), in the root or in ``testTrainMulti_7030_splits/`` or ``splits/``; videos
  under ``root/<class>/``. Classes are sorted by name.
- Folder-per-class: ``root/<class>/*.<video ext>``; classes sorted by name; when
  ``root/train`` and ``root/test`` exist each is folder-per-class, otherwise every
  ``test_every``-th video of a class (sorted by name) is a test video.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

VIDEO_EXTS = {".avi", ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".flv"}
UCF_DIRS = ("", "ucfTrainTestlist")
HMDB_DIRS = ("", "testTrainMulti_7030_splits", "splits")
HMDB_RE = re.compile(r"^(?P<cls>.+)_test_split(?P<fold>\d+)\.txt$")


class SplitError(Exception):
    """A dataset root whose layout or split files cannot be used (message names them)."""


def _find(root: Path, dirs, name: str) -> Path | None:
    return next((root / d / name for d in dirs if (root / d / name).is_file()), None)


def detect_layout(root: str | Path) -> str:
    """'cache', 'ucf101', 'hmdb51' or 'folder'."""
    root = Path(root)
    if root.is_file() and root.suffix in (".h5", ".hdf5"):
        return "cache"
    if not root.is_dir():
        raise SplitError(f"{root}: no such dataset folder or cache file")
    if _find(root, UCF_DIRS, "classInd.txt"):
        return "ucf101"
    if any(HMDB_RE.match(p.name) for d in HMDB_DIRS if (root / d).is_dir()
           for p in (root / d).iterdir()):
        return "hmdb51"
    return "folder"


def _ucf(root: Path, split: str, fold: int):
    ind = _find(root, UCF_DIRS, "classInd.txt")
    classes = [line.split()[1] for line in ind.read_text().splitlines() if line.strip()]
    seen: dict[str, int] = {}
    for n, c in enumerate(classes, 1):  # the index is case-insensitive, as the lists are
        if c.lower() in seen:
            raise SplitError(f"{ind}: class {c!r} (entry {n}) is listed twice (also entry "
                             f"{seen[c.lower()]}); each output needs its own name")
        seen[c.lower()] = n
    lst = _find(root, UCF_DIRS, f"{split}list{fold:02d}.txt")
    if lst is None:
        raise SplitError(f"{root}: no {split}list{fold:02d}.txt beside {ind.name}")
    index = {c.lower(): i for i, c in enumerate(classes)}
    items = []
    for n, line in enumerate(lst.read_text().splitlines(), 1):
        if not line.strip():
            continue
        rel = line.split()[0].replace("\\", "/")
        cls = rel.split("/")[0].lower()
        if cls not in index:
            raise SplitError(f"{lst}:{n}: class folder {cls!r} is not in {ind.name}")
        items.append((rel, index[cls]))
    return items, classes


def _hmdb(root: Path, split: str, fold: int):
    files = {}
    for d in HMDB_DIRS:
        if (root / d).is_dir():
            for p in (root / d).iterdir():
                m = HMDB_RE.match(p.name)
                if m and int(m["fold"]) == fold:
                    files[m["cls"]] = p
    if not files:
        raise SplitError(f"{root}: no HMDB-51 split files for fold {fold}")
    classes = sorted(files)
    want = "1" if split == "train" else "2"
    items = []
    for label, cls in enumerate(classes):
        for line in files[cls].read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == want:
                items.append((f"{cls}/{parts[0]}", label))
    return items, classes


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTS)


def _folder(root: Path, split: str, test_every: int):
    if (root / "train").is_dir() and (root / "test").is_dir():
        base = root / split
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        items = [(f"{split}/{c}/{v.name}", i) for i, c in enumerate(classes)
                 if (base / c).is_dir() for v in _videos(base / c)]
        return items, classes
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and _videos(p))
    if not classes:
        raise SplitError(f"{root}: no class folders with videos "
                         f"({', '.join(sorted(VIDEO_EXTS))}) and no split files")
    items = []
    for i, c in enumerate(classes):
        for k, v in enumerate(_videos(root / c)):
            is_test = k % test_every == test_every - 1
            if is_test == (split == "test"):
                items.append((f"{c}/{v.name}", i))
    return items, classes


def _cache(path: Path, split: str, fold: int):
    import h5py

    with h5py.File(path, "r") as f:
        classes = [str(c) for c in f.attrs["classes"]]
        name = f"{split}{fold}"
        if name not in f.get("splits", {}):
            have = sorted(f["splits"]) if "splits" in f else []
            raise SplitError(f"{path}: cache has no split {name!r} (has {have})")
        rows = [r.decode() if isinstance(r, bytes) else str(r) for r in f["splits"][name][()]]
    items = [(r.rsplit("\t", 1)[0], int(r.rsplit("\t", 1)[1])) for r in rows]
    return items, classes


def load_split(root: str | Path, split: str = "train", fold: int = 1,
               test_every: int = 4) -> tuple[list[tuple[str, int]], list[str]]:
    """(items, classes) of ``split`` ('train' or 'test') and ``fold`` (1-based) for a
    dataset folder (UCF-101, HMDB-51, folder-per-class) or a ``hybrid prepare`` cache."""
    if split not in ("train", "test"):
        raise SplitError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    layout = detect_layout(root)
    if layout == "cache":
        return _cache(root, split, fold)
    if layout == "ucf101":
        return _checked(root, split, fold, *_ucf(root, split, fold))
    if layout == "hmdb51":
        return _checked(root, split, fold, *_hmdb(root, split, fold))
    if fold != 1:
        raise SplitError(f"{root}: a folder-per-class dataset has one fold, asked for {fold}")
    return _checked(root, split, fold, *_folder(root, split, test_every))


def _checked(root: Path, split: str, fold: int, items, classes):
    """Split files are not trusted: every entry must stay inside the dataset folder, a
    classifier needs two classes or more, and every class needs training videos."""
    for rel, _ in items:
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts:
            raise SplitError(f"{root}: split entry {rel!r} points outside the dataset "
                             f"folder; entries are paths relative to it")
    if len(classes) < 2:
        raise SplitError(f"{root}: {len(classes)} class {classes}; a classifier needs at "
                         f"least 2")
    if split == "train":
        have = {lab for _, lab in items}
        empty = [c for k, c in enumerate(classes) if k not in have]
        if empty:
            raise SplitError(f"{root}: class(es) {empty} have no training videos in fold "
                             f"{fold}; add their videos or remove them from the class list")
    return items, classes


def available_folds(root: str | Path) -> list[int]:
    """Folds whose split files exist (1..3 for UCF-101/HMDB-51, [1] for a folder)."""
    root = Path(root)
    layout = detect_layout(root)
    if layout == "ucf101":
        return [k for k in (1, 2, 3) if _find(root, UCF_DIRS, f"trainlist{k:02d}.txt")]
    if layout == "hmdb51":
        return sorted({int(m["fold"]) for d in HMDB_DIRS if (root / d).is_dir()
                       for p in (root / d).iterdir() if (m := HMDB_RE.match(p.name))})
    return [1]
