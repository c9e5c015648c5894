"""The video cache, the default store of ``hybrid prepare DATA -o DIR``: every video of a
dataset as MPEG-4 Part 2 GOP 12 at the prepare size (transcoded once; a video already in
that form is copied), with the index of its GOPs' I-frames, so a loader seeks to the GOPs
it samples and decodes only those (:mod:`hybrid.video.seek`). About the size of the
source videos (at most ``--max-ratio`` x); the array cache (:mod:`hybrid.data.cache`,
``--store arrays``) is 12-50x them and decodes nothing when read.

Layout::

    DIR/videocache.json          format, version (2), kind "video-cache", size (W, H),
                                 root (the dataset folder), layout, classes,
                                 splits {"train1": [[relpath, label], ...], ...}
    DIR/videos/<name>            the video, in the reader's form (AVI): <name> is the
                                 relpath when it ends in .avi, else relpath + ".avi"
    DIR/videos/<name>.json       {"label", "source_stamp", "gops": [I-frame pts, ...],
                                 "qscale": the transcode's quantiser (None: copied)}

Version 1 named every video relpath + ".avi" (``x.avi.avi``) and is refused by name.

Kill-safe and resumable as the array cache: a worker writes a video under a temporary
name; the parent renames it and then writes its ``.json`` atomically
(:func:`deploy.atomic.write_file`), so a video counts as done only with its index; a
re-run removes temporary files, deletes videos that left the splits (``pruned``; each
index before its video), redoes videos whose source changed (size, modification time)
and refuses another dataset folder or size. ``DIR/.lock`` is held throughout.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from deploy.atomic import write_file
from hybrid import locking
from hybrid.data.mpstart import spawn_pool, stop_pool
from hybrid.data.splits import (
    SplitError,
    available_folds,
    check_entries,
    detect_layout,
    load_split,
)
from hybrid.video.extract import FORMAT

log = logging.getLogger(__name__)
VERSION = 2  # 1: every video named relpath + ".avi" (x.avi.avi)
HEADER = "videocache.json"
TMP = ".part.avi"  # suffix of a video a worker is writing
MAX_RATIO = 2.0  # a transcoded video's bytes at most this x its source's (coarser q if over)


class NotInVideoCacheError(ValueError):
    """A video of the splits that the video cache does not hold (skipped as unreadable
    by prepare, or prepare not finished): reported and left out, as an unreadable one."""


def video_path(out: Path, rel: str) -> Path:
    """Where video ``rel`` of the dataset lies in the video cache ``out`` (an AVI file:
    its own name when it is one, else with ``.avi`` added, ``x.mp4`` -> ``x.mp4.avi``)."""
    return out / "videos" / (rel if rel.lower().endswith(".avi") else rel + ".avi")


def index_path(out: Path, rel: str) -> Path:
    """The GOP index (and source stamp) of video ``rel``: beside it, ``.json`` added."""
    v = video_path(out, rel)
    return v.with_name(v.name + ".json")


def _work(args: tuple[str, str, str, tuple[int, int], float]
          ) -> tuple[str, list | None, int | None, str | None]:
    """In a worker: ``root/rel`` into ``dst`` + TMP (transcoded, or copied when already
    in form) and its GOP index. A transcode is at CoViAR's quantiser (q 2) unless it
    comes out over ``max_ratio`` x the source's bytes (an H.264 source: MPEG-4 Part 2
    needs several times H.264's bits for the same picture); then at the finest coarser
    quantiser within it (q 31 at most; ``max_ratio`` 0: always q 2). Returns (rel,
    index, quantiser (None: copied), None) or (rel, None, None, error)."""
    from hybrid.video.errors import VideoError
    from hybrid.video.seek import gop_index
    from hybrid.video.transcode import (
        DEFAULT_QSCALE,
        EncodeConfig,
        is_coviar_form,
        transcode,
    )

    root, rel, dst, size, max_ratio = args
    src, tmp = Path(root) / rel, Path(dst + TMP)
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        if is_coviar_form(src, tuple(size)):
            transcode(src, tmp, EncodeConfig(size=tuple(size)))  # copied as it is
            return rel, gop_index(tmp), None, None
        bound, q = max_ratio * src.stat().st_size, DEFAULT_QSCALE
        transcode(src, tmp, EncodeConfig(size=tuple(size), qscale=q), force=True)
        while max_ratio > 0 and tmp.stat().st_size > bound and q < 31:
            q = min(31, q + max(1, q // 4))  # about 15-25 % fewer bytes a step
            transcode(src, tmp, EncodeConfig(size=tuple(size), qscale=q), force=True)
        return rel, gop_index(tmp), q, None
    except VideoError as e:
        err = str(e).replace(str(tmp), str(Path(root) / rel))
    except Exception as e:  # noqa: BLE001  (an FFmpeg surprise must not stop the dataset)
        err = f"{Path(root) / rel}: unexpected {type(e).__name__}: {e}"
    tmp.unlink(missing_ok=True)
    return rel, None, None, err


def _header(out: Path, root: Path, size: tuple[int, int]) -> list[tuple[str, int]]:
    """Write (or check) the header; returns every (rel, label) to prepare."""
    splits, classes = {}, None
    for fold in available_folds(root):
        for split in ("train", "test"):
            items, classes = load_split(root, split, fold)
            splits[f"{split}{fold}"] = [[r, int(lab)] for r, lab in items]
    names: dict[Path, str] = {}
    for items in splits.values():
        for r, _ in items:
            other = names.setdefault(video_path(out, r), r)
            if other != r:  # x.mp4 and a source named x.mp4.avi
                raise ValueError(f"{root}: videos {other!r} and {r!r} would both be "
                                 f"{video_path(out, r)} in the video cache; rename one")
    head = out / HEADER
    want = {"size": list(size), "root": str(root.resolve())}
    if head.is_file():
        have = read_header(out)
        got = {"size": list(have["size"]), "root": have["root"]}
        if got != want:
            raise ValueError(f"{out}: video cache was made with {got}, asked for {want}; "
                             f"use another folder")
    elif any(p.name != ".lock" for p in out.iterdir()):
        raise ValueError(f"{out}: a folder that is not a video cache (no {HEADER}); "
                         f"choose another folder")
    data = {"format": FORMAT, "version": VERSION, "kind": "video-cache", **want,
            "layout": detect_layout(root), "classes": classes, "splits": splits}
    write_file(head, lambda f: f.write(json.dumps(data).encode()))
    labels = {}
    for items in splits.values():
        labels.update({r: lab for r, lab in items})
    return sorted(labels.items())


def read_header(out: str | Path) -> dict:
    out = Path(out)
    try:
        head = json.loads((out / HEADER).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{out / HEADER}: cannot read the video cache's header ({e})") from None
    if head.get("kind") != "video-cache" or head.get("version") != VERSION:
        raise ValueError(f"{out / HEADER}: kind {head.get('kind')!r} version "
                         f"{head.get('version')}, this code reads video-cache version "
                         f"{VERSION}; run `hybrid prepare DATA -o NEW_DIR` into a new "
                         f"folder (version 1 named videos x.avi.avi)")
    return head


def as_array_source(data: str | Path, size: tuple[int, int]) -> tuple[Path, Path | None]:
    """(dataset folder, video cache or None) that an array cache of ``data`` at ``size``
    is prepared from: a dataset folder as it is; a video cache as the dataset it was made
    from, its videos extracted instead of transcoded again (ValueError when it was made
    at another size, or its dataset folder is gone)."""
    data = Path(data)
    if not (data / HEADER).is_file():
        return data, None
    head = read_header(data)
    if tuple(head["size"]) != tuple(size):
        w, h = head["size"]
        raise ValueError(f"{data}: a video cache at {w}x{h}, asked for an array cache at "
                         f"{size[0]}x{size[1]}; pass --size {w}x{h}")
    root = Path(head["root"])
    if not root.is_dir():
        raise ValueError(f"{data}: the dataset folder it was made from, {root}, is gone "
                         "(its splits and source stamps are read from there)")
    return root, data


def videocache_split(root: Path, split: str, fold: int) -> tuple[list[tuple[str, int]], list[str]]:
    """(items, classes) of ``split`` and ``fold`` as the video cache at ``root`` lists them
    (checked: each entry a path inside the dataset, each label a class index)."""
    head = read_header(root)
    where = root / HEADER
    splits, classes = head.get("splits"), head.get("classes")
    if not isinstance(splits, dict):
        raise SplitError(f"{where}: 'splits' is not an object of split lists")
    if not (isinstance(classes, list) and len(classes) >= 2
            and all(isinstance(c, str) and c for c in classes)):
        raise SplitError(f"{where}: 'classes' is not a list of two or more class names")
    name = f"{split}{fold}"
    if name not in splits:
        raise SplitError(f"{root}: video cache has no split {name!r} "
                         f"(has {sorted(splits)})")
    rows = splits[name]
    if not (isinstance(rows, list) and all(isinstance(r, list) and len(r) == 2 for r in rows)):
        raise SplitError(f"{where}: split {name!r} is not a list of [path, label] entries")
    items = [(r, lab) for r, lab in rows]
    check_entries(where, items, classes)
    return items, list(classes)



def source_stamp(path: Path) -> str:
    """What identifies a source video's content for resuming: size and modification
    time (ns); "" when it cannot be read (the worker then reports it)."""
    try:
        st = path.stat()
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def source_bytes(root: Path, rels: list[str]) -> int:
    """Bytes of the source videos ``rels`` of the dataset at ``root`` (those on disk):
    what a store's size is reported against."""
    return sum((root / r).stat().st_size for r in rels if (root / r).is_file())


def prepare_videos(root: str | Path, out: str | Path, size: tuple[int, int], workers: int = 2,
                   progress: Callable[[int], None] | None = None,
                   on_start: Callable[[int], None] | None = None,
                   max_ratio: float = MAX_RATIO) -> dict:
    """Write (or resume) the video cache ``out`` of the dataset at ``root``. Returns a
    summary as :func:`hybrid.data.cache.prepare` does (``bytes``: of the videos,
    ``source_bytes``: of their sources). ``max_ratio``: a transcoded video's bytes at
    most this times its source's, by a coarser quantiser where CoViAR's q 2 is over
    (``_work``; 0: always q 2; a video already in form is copied). A new
    video cache in which no video could be written (an empty folder, only bad videos,
    interrupted before the first) is removed again: no folder is left that reads as a
    video cache of nothing (``video_cache`` None in the summary)."""
    root, out = Path(root), Path(out)
    if (root / HEADER).is_file():
        raise ValueError(f"{root}: already a video cache (of {read_header(root)['root']}); "
                         "prepare that dataset folder, or `--store arrays` from this one")
    created = not out.exists()
    fresh = created or not any(out.iterdir())
    out.mkdir(parents=True, exist_ok=True)
    with locking.hold(out / ".lock", f"video cache {out}", remove=True):
        try:
            summary = _prepare_videos(root, out, size, workers, progress, on_start,
                                      max_ratio)
        except BaseException:
            if fresh and not any((out / "videos").rglob("*.json")):
                _remove(out, created)
            raise
        if fresh and not summary["prepared"] + summary["already_done"]:
            _remove(out, created)
            summary.update(video_cache=None, bytes=0)
    return summary


def _remove(out: Path, created: bool) -> None:
    """Delete what this prepare wrote into ``out`` (all of it when it made ``out``)."""
    import shutil

    if created:
        shutil.rmtree(out, ignore_errors=True)
        return
    shutil.rmtree(out / "videos", ignore_errors=True)
    (out / HEADER).unlink(missing_ok=True)


def _prepare_videos(root: Path, out: Path, size: tuple[int, int], workers: int, progress,
                    on_start, max_ratio: float) -> dict:
    items = _header(out, root, tuple(size))
    for tmp in (out / "videos").rglob("*" + TMP):  # half-written by a killed run
        tmp.unlink()
    pruned = _prune(out, items)
    stamps = {r: source_stamp(root / r) for r, _ in items}
    todo, changed = [], 0
    for rel, lab in items:
        meta = index_path(out, rel)
        if meta.is_file() and video_path(out, rel).is_file():
            if json.loads(meta.read_text()).get("source_stamp") == stamps[rel] != "":
                continue
            changed += 1
        meta.unlink(missing_ok=True)
        todo.append((rel, lab))
    if on_start:
        on_start(len(todo))
    jobs = [(str(root), r, str(video_path(out, r)), tuple(size), max_ratio)
            for r, _ in todo]
    labels, failed, done = dict(items), [], 0
    # see hybrid.data.cache (spawned; workers ignore Ctrl-C, terminated below)
    pool = None
    try:
        pool = spawn_pool(workers) if workers > 1 and len(jobs) > 1 else None
        for rel, gops, q, err in (map(_work, jobs) if pool is None
                                  else pool.imap_unordered(_work, jobs)):
            if err is not None:
                log.info("skipped %s", err)
                failed.append({"path": rel, "error": err})
            else:
                dst = video_path(out, rel)
                os.replace(str(dst) + TMP, dst)
                meta = {"label": labels[rel], "source_stamp": stamps[rel], "gops": gops,
                        "qscale": q}
                write_file(index_path(out, rel),
                           lambda f, m=meta: f.write(json.dumps(m).encode()))
                done += 1
            if progress:
                progress(1)
    finally:
        if pool is not None:
            stop_pool(pool)
    size_b = sum(video_path(out, r).stat().st_size for r, _ in items
                 if video_path(out, r).is_file())
    return {"video_cache": str(out), "bytes": size_b,
            "source_bytes": source_bytes(root, [r for r, _ in items
                                                if video_path(out, r).is_file()]),
            "videos": len(items), "prepared": done,
            "already_done": len(items) - len(todo), "changed": changed, "failed": failed,
            "pruned": pruned}


def _prune(out: Path, items: list[tuple[str, int]]) -> int:
    """Delete the videos (and indices) of ``out`` that are no longer in the splits, and
    folders left empty; returns how many videos. Each index goes before its video, so a
    run killed midway leaves at most unindexed videos, which count as not done (and go
    at the next run)."""
    keep = {p for r, _ in items for p in (video_path(out, r), index_path(out, r))}
    gone = [p for p in (out / "videos").rglob("*") if p.is_file() and p not in keep]
    for p in sorted(gone, key=lambda p: not p.name.endswith(".json")):  # indices first
        log.info("pruned %s (no longer in the splits)", p)
        p.unlink()
    for d in sorted((d for d in (out / "videos").rglob("*") if d.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    return sum(not p.name.endswith(".json") for p in gone)


class VideoCacheReader:
    """Paths and GOP indices of a video cache's videos (indices read once per process)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        head = read_header(self.path)
        self.attrs = {"size": head["size"]}
        self._index: dict[str, list[int]] = {}

    def entry(self, rel: str) -> tuple[Path, list[int]]:
        """(video file, GOP index) of ``rel``; NotInVideoCacheError when absent, or when
        it would lie outside the cache's ``videos`` folder (a ``..`` entry, a link)."""
        v = video_path(self.path, rel)
        inside = (self.path / "videos").resolve()
        if inside not in v.resolve().parents:
            raise NotInVideoCacheError(f"{self.path}: video {rel!r} lies outside the video "
                                       "cache's videos folder; not read")
        if rel not in self._index:
            try:
                self._index[rel] = json.loads(index_path(self.path, rel).read_text())["gops"]
            except (OSError, ValueError, KeyError):
                raise NotInVideoCacheError(
                    f"{self.path}: no video {rel!r} (skipped by `hybrid prepare` as "
                    f"unreadable, or prepare not finished)") from None
        return v, self._index[rel]
