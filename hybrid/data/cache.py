"""The HDF5 array cache written by ``hybrid prepare --store arrays`` and read by the Dataset.

Design: one HDF5 file holds, per video, the extracted modalities in the layout of
``hybrid.video.extract`` but as the uint8 codes the model sees (``iframe`` RGB, ``mv``
CoViAR's ``clip(trunc(mv * 127.5 / mv_bound) + 128, 0, 255)``, ``residual``
``clip(r + 128, 0, 255)``: lossless for the model, see
:class:`hybrid.data.transforms.Normalization`), ``p_frames``, one compressed chunk per
GOP, so a training sample reads only the GOPs it samples and never decodes video.
Version 1 (float16 MV, int16 residuals, 10x larger) is refused. Layout::

    /                 attrs: format, version (2), kind="cache", accumulate, coviar, mode,
                      size (W, H of the transcoded videos), mv_bound, compression,
                      classes, layout, root (the dataset folder, resolved)
    /splits/<split><fold>   str rows "relpath<TAB>label" (train1, test1, ...)
    /videos/<key>     group (key = relpath with "/" -> "|"); attrs path, label,
                      source_stamp ("size:mtime_ns" of the source video);
                      datasets iframe, mv, residual, p_frames

Workers transcode (when needed) and extract in separate processes; only the parent
writes the file. A video is written under ``<key>.part`` and renamed when complete, and
the file is flushed after each video, so a re-run skips finished videos and drops any
half-written one. A new cache is written as ``<out>.part`` and renamed to ``<out>`` when
prepare ends with at least one video in it (a killed run resumes the ``.part``; a run
that wrote nothing, e.g. an empty folder or only bad videos, leaves no file); a cache
that exists is updated in place, a video at a time as above. A re-run resumes only the
same source: another dataset folder is refused, and a video whose source changed (size
or modification time) or that left the splits is dropped (and extracted again when still
listed). Bad videos are reported and skipped.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.atomic import ensure_free, scratch_dir
from hybrid import locking
from hybrid.data.arrayfile import CACHE_VERSION, key_of
from hybrid.data.mpstart import HeldInterrupt, spawn_pool, stop_pool
from hybrid.data.partition import assign_shards, check_shard
from hybrid.data.splits import (
    available_folds,
    detect_layout,
    load_split,
    missing_videos,
)
from hybrid.data.transforms import Normalization
from hybrid.data.videocache import index_path, source_bytes, source_stamp, video_path
from hybrid.video.extract import FORMAT, check_format, mode_attrs, write_group
from hybrid.video.transcode import DEFAULT_SIZE

log = logging.getLogger(__name__)
# Chunk filter (level 1 for gzip), chosen by measurement (benchmarks/data_throughput.py,
# docs/benchmarks.md): on uint8 codes lzf stores 1.3-1.4x gzip-1's bytes, which is what a dataset
# cache cannot afford.
COMPRESSION = "gzip"


@dataclass(frozen=True)
class PrepareConfig:
    size: tuple[int, int] = DEFAULT_SIZE  # (width, height) videos are transcoded to
    accumulate: bool = True  # CoViAR accumulation back to the I-frame
    coviar: bool = True  # integer-pixel (CoViAR) or sub-pixel motion
    compress: bool = True  # compressed chunks (COMPRESSION); False reads fastest
    mv_bound: float = Normalization.mv_bound  # |MV| px at the ends of the uint8 codes


def _codes(arrays: dict, cfg: PrepareConfig) -> dict:
    return Normalization(mv_bound=cfg.mv_bound).codes(arrays)


def extract_one(args: tuple) -> tuple[str, dict | None, str | None]:
    """In a worker: transcode ``root/rel`` when not in form, extract. ``args``: (root,
    rel, cfg) or (root, rel, cfg, copy), ``copy`` a transcoded copy of the video already
    in form (the video cache's; None: none), read instead. Returns (rel, arrays, None) or
    (rel, None, error message), the message naming the source video."""
    from hybrid.video.errors import VideoError
    from hybrid.video.extract import extract_arrays
    from hybrid.video.transcode import EncodeConfig, is_coviar_form, transcode

    root, rel, cfg = args[:3]
    src = Path(root) / rel
    copy = args[3] if len(args) > 3 and args[3] is not None else None
    try:
        if copy is not None and is_coviar_form(copy, cfg.size):
            try:
                return rel, _codes(extract_arrays(copy, cfg.accumulate, cfg.coviar), cfg), None
            except VideoError as e:
                return rel, None, str(e).replace(str(copy), f"{copy} (of {src})")
        if is_coviar_form(src, cfg.size):
            return rel, _codes(extract_arrays(src, cfg.accumulate, cfg.coviar), cfg), None
        with scratch_dir("prepare") as tmp:  # a worker's: removed by stop_pool if killed
            dst = Path(tmp) / "v.avi"
            transcode(src, dst, EncodeConfig(size=cfg.size), force=True)
            return rel, _codes(extract_arrays(dst, cfg.accumulate, cfg.coviar), cfg), None
    except VideoError as e:
        return rel, None, str(e)
    except Exception as e:  # noqa: BLE001  (an FFmpeg surprise must not stop the dataset)
        return rel, None, f"{src}: unexpected {type(e).__name__}: {e}"


def _init_file(f, root: Path, cfg: PrepareConfig) -> list[tuple[str, int]]:
    """Write (or check) the header and splits; returns every (rel, label) to prepare."""
    import h5py

    layout = detect_layout(root)
    splits, classes = {}, None
    for fold in available_folds(root):
        for split in ("train", "test"):
            items, classes = load_split(root, split, fold)
            splits[f"{split}{fold}"] = items
    want = {"accumulate": cfg.accumulate, "coviar": cfg.coviar, "size": list(cfg.size),
            "mv_bound": float(cfg.mv_bound)}
    source = str(root.resolve())
    if "format" in f.attrs:
        # what the file is before which version: an extract file has its own versions
        kind = f.attrs.get("kind")
        if kind is not None and kind != "cache":
            raise ValueError(f"{f.filename}: a `hybrid {kind}` file, not a prepare cache; "
                             f"choose another output file")
        check_format(f, f.filename, CACHE_VERSION)
        if kind is None:
            raise ValueError(f"{f.filename}: a `hybrid extract` file, not a prepare cache; "
                             f"choose another output file")
        have = {"accumulate": bool(f.attrs["accumulate"]), "coviar": bool(f.attrs["coviar"]),
                "size": [int(v) for v in f.attrs["size"]],
                "mv_bound": float(f.attrs["mv_bound"])}
        if have != want:
            raise ValueError(f"{f.filename}: cache was made with {have}, asked for {want}; "
                             f"use another output file")
        made_from = str(Path(str(f.attrs.get("root", ""))).resolve())
        if made_from != source:
            raise ValueError(f"{f.filename}: cache was made from the dataset {made_from}, "
                             f"not {source}; use another output file")
    elif len(f) or len(f.attrs):
        raise ValueError(f"{f.filename}: an HDF5 file of another program (no 'format' "
                         f"attribute), not a prepare cache; choose another output file")
    else:
        f.attrs.update({"format": FORMAT, "version": CACHE_VERSION, "kind": "cache",
                        "layout": layout, "root": source, "size": list(cfg.size),
                        "mv_bound": float(cfg.mv_bound),
                        "compression": COMPRESSION if cfg.compress else "none",
                        **mode_attrs(cfg.accumulate, cfg.coviar)})
    f.attrs["classes"] = classes
    sp = f.require_group("splits")
    for name, items in splits.items():
        if name in sp:
            del sp[name]
        sp.create_dataset(name, data=[f"{r}\t{lab}" for r, lab in items],
                          dtype=h5py.string_dtype())
    f.require_group("videos")
    labels = {}
    for items in splits.values():
        labels.update(dict(items))
    return sorted(labels.items())


def prepare(root: str | Path, out: str | Path, cfg: PrepareConfig = PrepareConfig(),
            workers: int = 2, progress: Callable[[int], None] | None = None,
            on_start: Callable[[int], None] | None = None,
            shard: tuple[int, int] | None = None, videos: str | Path | None = None) -> dict:
    """Transcode and extract every video of the dataset at ``root`` into the cache
    ``out`` (only part K of N with ``shard=(K, N)``, see :mod:`hybrid.data.shards`).
    Resumable; bad videos are reported in the result (``failed``) and skipped; videos
    the annotations list but the disk lacks (Kinetics) are counted (``missing``) and
    listed in ``missing_list`` (a text file beside ``out``). One writer per cache:
    ``out.lock`` is held throughout, so a second ``prepare`` into the same cache raises
    :class:`hybrid.locking.LockedError` before any work. ``videos``: the video cache of
    the same dataset at ``cfg.size`` (``hybrid prepare`` with both caches), whose copies
    of the sources (those indexed from the same source stamp) are extracted instead of
    transcoding the sources a second time."""
    root, out = Path(root), Path(out)
    with locking.hold(out.with_name(out.name + ".lock"), f"cache {out}", remove=True):
        part = out.with_name(out.name + ".part")
        if out.exists():  # a cache already published: updated in place, video by video
            part.unlink(missing_ok=True)  # a stale one (we hold the lock: it is ours)
            return _prepare(root, out, out, cfg, workers, progress, on_start, shard,
                            videos)
        try:
            summary = _prepare(root, out, part, cfg, workers, progress, on_start, shard,
                               videos)
        except BaseException:
            if not _videos_in(part):  # nothing to resume: no file left behind
                part.unlink(missing_ok=True)
            raise
        if summary["prepared"] + summary["already_done"] or not summary["videos"]:
            # an empty shard (no video is its part) is a valid, written one
            os.replace(part, out)
        else:  # no video written (all bad): no cache
            part.unlink()
            summary.update(cache=None, bytes=0)
        return summary


def _videos_in(path: Path) -> int:
    """Finished videos in the (partial) cache ``path``; 0 when absent or unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return sum(not k.endswith(".part") for k in f.get("videos", {}))
    except OSError:
        return 0


def _drop_stale(vids, stamps: dict[str, str]) -> int:
    """Delete the videos a re-run must not keep: those no longer in the splits, and
    those whose source changed since they were extracted (size or modification time;
    a cache without stamps counts as changed). Returns how many changed."""
    keep = {key_of(r): st for r, st in stamps.items()}
    changed = 0
    for k in list(vids):
        if k not in keep:
            del vids[k]
        elif str(vids[k].attrs.get("source_stamp", "")) != keep[k] or not keep[k]:
            del vids[k]
            changed += 1
    return changed


def _copies(videos: Path, rels: list[str], stamps: dict[str, str]) -> dict[str, str]:
    """{rel: its transcoded copy} for the videos the video cache ``videos`` holds indexed
    from the same source (size and modification time) as now."""
    import json

    out = {}
    for rel in rels:
        try:
            meta = json.loads(index_path(videos, rel).read_text())
        except (OSError, ValueError):
            continue
        if stamps[rel] and meta.get("source_stamp") == stamps[rel]:
            out[rel] = str(video_path(videos, rel))
    return out


def _open(out: Path):
    """The cache open for writing; a file held open by a reader is a clear error."""
    import h5py

    try:
        return h5py.File(out, "a")
    except OSError as e:
        if "lock" in str(e).lower() or "already open" in str(e).lower():
            raise OSError(f"{out}: the cache is open in another process (training or "
                          f"evaluation reading it?); try again when it ends") from None
        raise OSError(f"{out}: cannot open as an HDF5 cache ({e})") from None



def _in_memory():
    """An HDF5 file in memory only (one video's group, staged before the cache)."""
    import h5py

    return h5py.File(f"stage-{os.getpid()}-{id(object())}.h5", "w", driver="core",
                     backing_store=False)


def _prepare(root: Path, out: Path, work: Path, cfg: PrepareConfig, workers: int,
             progress, on_start, shard, videos) -> dict:
    """Prepare into the file ``work`` (``out`` itself, or ``out``.part while new)."""
    if work != out and work.exists() and not _videos_in(work):
        work.unlink()  # a .part a killed run left before any video: start afresh
    absent = missing_videos(root)  # listed, not on disk: dealt to parts all the same
    with _open(work) as f:
        everything = _init_file(f, root, cfg)
        check_shard(f, shard)
        part = None if shard is None else assign_shards(
            [r for r, _ in everything] + absent, shard[1])

        def mine(rel: str) -> bool:
            return part is None or part.get(rel) == shard[0]

        all_items = [it for it in everything if mine(it[0])]
        vids = f["videos"]
        for k in [k for k in vids if k.endswith(".part")]:
            del vids[k]  # half-written by a killed run
        stamps = {r: source_stamp(root / r) for r, _ in all_items}
        changed = _drop_stale(vids, stamps)
        todo = [(r, lab) for r, lab in all_items if key_of(r) not in vids]
    missing = [rel for rel in absent if mine(rel)]
    missing_list = out.with_name(out.name + ".missing.txt")
    if missing:
        missing_list.write_text("".join(f"{rel}\n" for rel in missing))
    labels = dict(all_items)
    if on_start:
        on_start(len(todo))
    failed, done = [], 0
    copies = {} if videos is None else _copies(Path(videos), [r for r, _ in todo], stamps)
    jobs = [(str(root), r, cfg, copies.get(r)) for r, _ in todo]
    # spawn, not fork: a worker forked from a process that has live threads (a PyAV
    # codec's, torch's, a Lava runtime's) can inherit a lock some thread held at the fork
    # and wait on it forever (seen in CI with VP9 clips). A spawned worker starts from a
    # fresh interpreter (its imports take about 0.2 s); default_kept leaves the
    # process's default start method unset, which Lava sets at import and fails if fixed.
    # Ctrl-C: the workers ignore it (spawn_pool), the parent terminates them below
    pool = None
    try:
        pool = spawn_pool(workers) if workers > 1 and len(jobs) > 1 else None
        results = map(extract_one, jobs) if pool is None else pool.imap_unordered(extract_one, jobs)
        with HeldInterrupt() as held, held.critical(), _open(work) as f:
            vids = f["videos"]
            for rel, arrays, err in held.waiting(results):
                if err is not None:
                    log.info("skipped %s", err)
                    failed.append({"path": rel, "error": err})
                else:
                    with _in_memory() as mem:  # compressed here, its size known
                        g = mem.create_group("v")
                        g.attrs.update({"path": rel, "label": labels[rel],
                                        "source_stamp": stamps[rel]})
                        write_group(g, arrays, np.uint8,
                                    COMPRESSION if cfg.compress else None)
                        # before HDF5 touches the cache: a full disk mid-write leaves a
                        # file HDF5 cannot close, and a segfault at exit
                        ensure_free(work, sum(d.id.get_storage_size() for d in g.values()))
                        mem.copy(g, vids, name=key_of(rel) + ".part")  # chunks as they are
                    vids.move(key_of(rel) + ".part", key_of(rel))
                    f.flush()
                    done += 1
                if progress:
                    progress(1)
            classes = [str(c) for c in f.attrs["classes"]]
    finally:
        if pool is not None:
            stop_pool(pool)
    return {"cache": str(out), "bytes": work.stat().st_size,
            "source_bytes": source_bytes(root, [r for r, _ in all_items]),
            "videos": len(all_items),
            "prepared": done,
            "already_done": len(all_items) - len(todo), "changed": changed,
            "failed": failed,
            "classes": classes, "shard": list(shard) if shard else None,
            "missing": len(missing), "missing_list": str(missing_list) if missing else None}
