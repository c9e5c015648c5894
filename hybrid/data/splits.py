"""Train/test splits of action datasets from their annotation files: UCF-101, HMDB-51,
Kinetics, Something-Something v2 and folder-per-class.

Items are ``(relative path, label)`` with the path relative to the dataset root, POSIX
style (``Class/video.avi``), and labels 0-based; ``classes[label]`` is the class name.

- UCF-101: ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt`` (``Class/v.avi 1``,
  1-based label), ``testlist0N.txt`` (``Class/v.avi``), in the root or in
  ``ucfTrainTestlist/``; videos under ``root/Class/``.
- HMDB-51: ``<class>_test_split<N>.txt`` with lines ``video.avi 1|2|0`` (1 train, 2 test,
  0 unused), in the root or in ``testTrainMulti_7030_splits/`` or ``splits/``; videos
  under ``root/<class>/``. Classes are sorted by name.
- Kinetics-400/600/700 as the public download scripts lay it out:
  ``annotations/{train,val,test}.csv`` with columns ``label,youtube_id,time_start,
  time_end,split`` and videos ``{split}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4``
  (another video extension with the same name is taken too). Our ``train`` is
  ``train.csv``, ``test`` is ``val.csv`` (Kinetics' own test labels are not public);
  classes are the sorted labels of ``train.csv``. Listed videos that are not there
  (common: YouTube removes them) are left out; :func:`missing_videos` lists them.
- Something-Something v2: ``labels.json`` (class -> id), ``train.json`` and
  ``validation.json`` (entries with ``id`` and ``template``; the class is the template
  without its brackets), also under their official ``something-something-v2-*.json``
  names, in the root or ``labels/``; videos ``{id}.webm`` in the root,
  ``20bn-something-something-v2/`` or ``videos/``. ``test`` is ``validation.json``;
  classes are ordered by id.
- Folder-per-class: ``root/<class>/*.<video ext>``; classes sorted by name; when
  ``root/train`` and ``root/test`` exist each is folder-per-class, otherwise every
  ``test_every``-th video of a class (sorted by name) is a test video.

The caches ``hybrid prepare`` writes carry their own splits; :mod:`hybrid.data.sources`
chooses between a dataset folder and those.
"""
from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

VIDEO_EXTS = {".avi", ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".flv"}
UCF_DIRS = ("", "ucfTrainTestlist")
HMDB_DIRS = ("", "testTrainMulti_7030_splits", "splits")
HMDB_RE = re.compile(r"^(?P<cls>.+)_test_split(?P<fold>\d+)\.txt$")
KINETICS_CSV = {"train": "train.csv", "test": "val.csv"}  # our split -> annotation file
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
SSV2_DIRS = ("", "labels")
SSV2_FILES = {"labels": ("labels.json", "something-something-v2-labels.json"),
              "train": ("train.json", "something-something-v2-train.json"),
              "test": ("validation.json", "something-something-v2-validation.json")}
SSV2_VIDEO_DIRS = ("", "20bn-something-something-v2", "videos")


class SplitError(Exception):
    """A dataset root whose layout or split files cannot be used (message names them)."""


def _text(path: Path) -> str:
    """An annotation file's text: UTF-8, a byte-order mark (Windows editors) dropped, as
    every list of a dataset is read alike."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise SplitError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _find(root: Path, dirs, name: str) -> Path | None:
    return next((root / d / name for d in dirs if (root / d / name).is_file()), None)


def detect_layout(root: str | Path) -> str:
    """The annotation layout of a dataset folder: 'ucf101', 'hmdb51', 'kinetics', 'ssv2'
    or 'folder' (the caches are told apart by :func:`hybrid.data.sources.detect_layout`)."""
    root = Path(root)
    if root.is_file():
        raise SplitError(f"{root}: a file, not a dataset folder (a folder of videos with "
                         "their splits)")
    if not root.is_dir():
        raise SplitError(f"{root}: no such dataset folder")
    if _find(root, UCF_DIRS, "classInd.txt"):
        return "ucf101"
    if any(HMDB_RE.match(p.name) for d in HMDB_DIRS if (root / d).is_dir()
           for p in (root / d).iterdir()):
        return "hmdb51"
    if (root / "annotations" / KINETICS_CSV["train"]).is_file():
        return "kinetics"
    if _ssv2_file(root, "labels"):
        return "ssv2"
    return "folder"


def _ucf(root: Path, split: str, fold: int):
    ind = _find(root, UCF_DIRS, "classInd.txt")
    classes = [line.split()[1] for line in _text(ind).splitlines() if line.strip()]
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
    for n, line in enumerate(_text(lst).splitlines(), 1):
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
        for line in _text(files[cls]).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == want:
                items.append((f"{cls}/{parts[0]}", label))
    return items, classes


def _kinetics_rows(root: Path, split: str) -> tuple[Path, list[dict]]:
    path = root / "annotations" / KINETICS_CSV[split]
    if not path.is_file():
        raise SplitError(f"{root}: no annotations/{KINETICS_CSV[split]} (Kinetics layout)")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        lacking = [c for c in KINETICS_COLUMNS if c not in (reader.fieldnames or [])]
        if lacking:
            raise SplitError(f"{path}: no column(s) {', '.join(lacking)} (has "
                             f"{', '.join(reader.fieldnames or [])})")
        return path, list(reader)


def _kinetics_listed(root: Path, split: str) -> tuple[list[tuple[str, int, bool]], list[str]]:
    """Every listed video of ``split`` as (relative path, label, present), and classes."""
    _, train_rows = _kinetics_rows(root, "train")
    classes = sorted({r["label"] for r in train_rows})
    path, rows = (_kinetics_rows(root, split) if split != "train"
                  else (root / "annotations" / KINETICS_CSV["train"], train_rows))
    index = {c: i for i, c in enumerate(classes)}
    stems: dict[str, dict[str, str]] = {}  # split folder -> stem -> file name on disk
    out = []
    for n, r in enumerate(rows, 2):
        if r["label"] not in index:
            raise SplitError(f"{path}:{n}: label {r['label']!r} is not a class of train.csv")
        try:
            stem = (f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_"
                    f"{int(float(r['time_end'])):06d}")
        except ValueError:
            raise SplitError(f"{path}:{n}: time_start/time_end must be numbers, got "
                             f"{r['time_start']!r}, {r['time_end']!r}") from None
        folder = r["split"]
        if folder not in stems:
            d = root / folder
            found = {}
            if d.is_dir():
                for p in sorted(d.iterdir(), key=lambda p: p.suffix != ".mp4"):
                    if p.suffix.lower() in VIDEO_EXTS:
                        found.setdefault(p.stem, p.name)
            stems[folder] = found
        name = stems[folder].get(stem)
        out.append((f"{folder}/{name or stem + '.mp4'}", index[r["label"]], name is not None))
    return out, classes


def _ssv2_file(root: Path, kind: str) -> Path | None:
    return next((root / d / n for d in SSV2_DIRS for n in SSV2_FILES[kind]
                 if (root / d / n).is_file()), None)


def _json(path: Path, kind: type):
    try:
        data = json.loads(_text(path))
        if isinstance(data, kind):
            return data
    except ValueError as e:
        raise SplitError(f"{path}: not valid JSON ({e})") from None
    raise SplitError(f"{path}: expected a JSON {kind.__name__} (Something-Something v2)")


def _ssv2_listed(root: Path, split: str) -> tuple[list[tuple[str, int, bool]], list[str]]:
    lab_path, path = _ssv2_file(root, "labels"), _ssv2_file(root, split)
    if path is None:
        raise SplitError(f"{root}: no {' or '.join(SSV2_FILES[split])} beside "
                         f"{lab_path.name} (Something-Something v2 layout)")
    labels = {k: int(v) for k, v in _json(lab_path, dict).items()}
    entries = _json(path, list)
    ids = sorted(labels.values())
    if ids != list(range(len(ids))):
        raise SplitError(f"{lab_path}: class ids must be 0..{len(ids) - 1}")
    classes = sorted(labels, key=labels.get)
    vdir = next((d for d in SSV2_VIDEO_DIRS if (root / d).is_dir()
                 and any((root / d / f"{e['id']}.webm").is_file() for e in entries[:50])), "")
    out = []
    for n, e in enumerate(entries):
        try:
            cls = e["template"].replace("[", "").replace("]", "")
            vid = str(e["id"])
        except (KeyError, TypeError, AttributeError):
            raise SplitError(f"{path}: entry {n} has no 'id' and 'template'") from None
        if cls not in labels:
            raise SplitError(f"{path}: entry {n} (id {vid}): class {cls!r} is not in "
                             f"{lab_path.name}")
        rel = f"{vdir}/{vid}.webm" if vdir else f"{vid}.webm"
        out.append((rel, labels[cls], (root / rel).is_file()))
    return out, classes


def _listed(root: Path, layout: str, split: str):
    return (_kinetics_listed if layout == "kinetics" else _ssv2_listed)(root, split)


def missing_videos(root: str | Path) -> list[str]:
    """Relative paths of videos a Kinetics or SSv2 root lists (train and test) that are
    not on disk; [] for other layouts."""
    root = Path(root)
    layout = detect_layout(root)
    if layout not in ("kinetics", "ssv2"):
        return []
    return sorted({rel for split in ("train", "test")
                   for rel, _, present in _listed(root, layout, split)[0] if not present})


def _present(root: Path, layout: str, split: str):
    listed, classes = _listed(root, layout, split)
    items = [(rel, label) for rel, label, present in listed if present]
    if len(items) < len(listed):
        log.info("%s: %d of %d %s videos listed are missing (left out)", root,
                 len(listed) - len(items), len(listed), split)
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


def load_split(root: str | Path, split: str = "train", fold: int = 1,
               test_every: int = 4) -> tuple[list[tuple[str, int]], list[str]]:
    """(items, classes) of ``split`` ('train' or 'test') and ``fold`` (1-based) for a
    dataset folder (UCF-101, HMDB-51, Kinetics, SSv2, folder-per-class)."""
    if split not in ("train", "test"):
        raise SplitError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    layout = detect_layout(root)
    if layout == "ucf101":
        return _checked(root, split, fold, *_ucf(root, split, fold))
    if layout == "hmdb51":
        return _checked(root, split, fold, *_hmdb(root, split, fold))
    if fold != 1:
        raise SplitError(f"{root}: a {layout} dataset has one fold, asked for {fold}")
    if layout in ("kinetics", "ssv2"):
        return _checked(root, split, fold, *_present(root, layout, split))
    return _checked(root, split, fold, *_folder(root, split, test_every))


def check_entries(where, items, classes) -> None:
    """Split entries are not trusted (a dataset's lists, a store's header): each one a
    path inside the dataset folder, with a label that is a class index."""
    k = len(classes)
    for rel, lab in items:
        if not isinstance(rel, str) or not rel:
            raise SplitError(f"{where}: split entry {rel!r} is not a path")
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts:
            raise SplitError(f"{where}: split entry {rel!r} points outside the dataset "
                             f"folder; entries are paths relative to it")
        if type(lab) is not int or not 0 <= lab < k:
            raise SplitError(f"{where}: split entry {rel!r}: label {lab!r} is not a class "
                             f"index 0..{k - 1}")


def _checked(root: Path, split: str, fold: int, items, classes):
    """Split files are not trusted: every entry must stay inside the dataset folder, a
    classifier needs two classes or more, and every class needs training videos."""
    check_entries(root, items, classes)
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
