"""The host stages of ``hybrid chip``, measured: the compressed-domain extraction of what
the model reads (the sampled segments' I-frame, motion vectors and residuals, as uint8
codes), and, for a source not already MPEG-4 GOP 12 at the read size, its transcode as a
stage of its own, so the extraction figure is never a transcode.

Protocol (GUIDE: like with like, warm, CPU beside wall):

- videos drawn at random (seeded) across the whole set, not the first few;
- the first of them is read once *cold* (imports, numba compilation, first open), and
  that time is reported apart: it never enters the median;
- then every drawn video, the first included, is timed warm: wall (``perf_counter``) and
  CPU time of the process (``process_time``: every thread, the reader's tracing thread
  included), per video and per decoded frame; median, quartiles, a bootstrap 95 %
  interval of the median;
- beside it, in the same run and on the same files, a plain PyAV decode (every frame to
  RGB, what any pipeline pays to look at the video): the yardstick of the extraction.

Energy: RAPL when readable, else CPU time x a per-core power preset
(:mod:`deploy.hardware.host`), labelled which.
"""
from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deploy.hardware import host, uncertainty
from hybrid.data.transforms import sample_segments


def draw(n: int, k: int, seed: int) -> list[int]:
    """``min(k, n)`` distinct indices of ``range(n)``, drawn at random (seeded)."""
    if n < 1:
        raise ValueError("no video to draw from")
    return random.Random(seed).sample(range(n), min(k, n))


def time_each(items: Sequence, fn: Callable, clock: Callable = time.perf_counter,
              cpu_clock: Callable = time.process_time,
              meter: host.EnergyMeter | None = None) -> dict:
    """``fn(item)`` once cold on ``items[0]`` (reported apart as ``cold``), then once per
    item warm: {'cold': {wall_s, cpu_s}, 'warm': [{wall_s, cpu_s, joules, out}, ...]}."""
    def one(item) -> dict:
        if meter:
            meter.start()
        w0, c0 = clock(), cpu_clock()
        out = fn(item)
        w1, c1 = clock(), cpu_clock()
        return {"wall_s": w1 - w0, "cpu_s": c1 - c0,
                "joules": meter.stop() if meter else None, "out": out}

    cold = one(items[0])
    return {"cold": {"wall_s": cold["wall_s"], "cpu_s": cold["cpu_s"]},
            "warm": [one(it) for it in items]}


def summary(values: Sequence[float], seed: int = 0) -> dict:
    """Median, quartiles, min, max, a bootstrap 95 % interval of the median, the values."""
    v = np.asarray(values, dtype=float)
    q1, q3 = np.quantile(v, [0.25, 0.75])
    return {"median": float(np.median(v)), "p25": float(q1), "p75": float(q3),
            "min": float(v.min()), "max": float(v.max()),
            "median_ci95": uncertainty.bounds(uncertainty.replicates(v, np.median, seed=seed)),
            "values": v.tolist()}


def plain_decode(path: Path) -> int:
    """Frames of a plain PyAV decode of ``path`` (each to an RGB array); the yardstick."""
    import av

    n = 0
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


class VideoSource:
    """Where ``dataset``'s video ``rel`` is read from, and how the model reads it."""

    def __init__(self, dataset, segments: int):
        self.ds, self.segments = dataset, segments

    @property
    def kind(self) -> str:
        if self.ds.cache is not None:
            return "cache"
        return "videocache" if self.ds.videos is not None else "folder"

    def path(self, rel: str) -> Path:
        if self.kind == "videocache":
            return self.ds.videos.entry(rel)[0]
        return self.ds.source / rel

    def needs_transcode(self, rel: str) -> bool:
        from hybrid.video.transcode import is_coviar_form

        return self.kind == "folder" and not is_coviar_form(self.path(rel), self.ds.video_size)

    def transcode(self, rel: str, out: Path) -> Path:
        from hybrid.video.transcode import EncodeConfig, transcode

        transcode(self.path(rel), out, EncodeConfig(size=self.ds.video_size), force=True)
        return out

    def extract(self, rel: str, path: Path | None) -> int:
        """Read what the model reads of ``rel`` (from ``path``, a transcoded copy, when
        given): the GOP index, the sampled segments' GOPs, their uint8 codes. Returns
        the frames decoded."""
        from hybrid.video.seek import gop_index, read_gops_at

        if self.kind == "cache":
            a, idx = self.ds.load(rel, self.segments)
            return 0
        p = path or self.path(rel)
        starts = gop_index(p)
        idx = sample_segments(len(starts), self.segments, False)
        a = self.ds.norm.codes(read_gops_at(p, starts, idx, self.ds.accumulate,
                                            self.ds.coviar))
        first = {g: k for k, g in reversed(list(enumerate(idx)))}  # one position per GOP
        return int(sum(1 + int(a["p_frames"][k]) for k in first.values()))


def measure(dataset, segments: int, videos: int = 6, seed: int = 0,
            progress: Callable[[int], None] | None = None,
            cpu: host.HostCpu | None = None, meter: host.EnergyMeter | None = None) -> dict:
    """Time the host stages on ``videos`` videos of ``dataset`` drawn with ``seed``:
    {'videos': [rel...], 'stages': {name: {...}}, 'cold': {...}, 'source_kind'}.
    Stage names: 'transcode' (only when a source needs it), 'extract', and 'decode' (the
    plain PyAV decode of the file extraction reads, the yardstick; not a stage)."""
    cpu = cpu or host.read_cpu()
    meter = meter or host.EnergyMeter()
    src = VideoSource(dataset, segments)
    rels = [dataset.items[i][0] for i in draw(len(dataset), videos, seed)]
    with tempfile.TemporaryDirectory() as tmp:
        copies: dict[str, Path] = {}
        transcoded = [r for r in rels if src.needs_transcode(r)]

        def do_transcode(rel):
            copies[rel] = src.transcode(rel, Path(tmp) / f"{len(copies)}.avi")

        def do_extract(rel):
            out = src.extract(rel, copies.get(rel))
            if progress:
                progress(1)
            return out

        runs = {}
        if transcoded:
            runs["transcode"] = time_each(transcoded, do_transcode, meter=meter)
        runs["extract"] = time_each(rels, do_extract, meter=meter)
        if src.kind != "cache":
            runs["decode"] = time_each(rels, lambda r: plain_decode(copies.get(r)
                                                                    or src.path(r)),
                                       meter=meter)
    stages = {}
    for name, r in runs.items():
        warm = r["warm"]
        wall = [w["wall_s"] for w in warm]
        cpu_s = [w["cpu_s"] for w in warm]
        energy = [host.host_energy(w["cpu_s"], w["joules"], cpu)[0] for w in warm]
        frames = [w["out"] for w in warm] if name != "transcode" else None
        st = {"videos": len(warm), "wall_s": summary(wall, seed), "cpu_s": summary(cpu_s, seed),
              "energy_j": summary(energy, seed),
              "energy_label": host.host_energy(1.0, warm[0]["joules"], cpu)[1],
              "cold": r["cold"]}
        if frames and all(frames):
            st["frames"] = frames
            st["wall_per_frame_s"] = summary([w / f for w, f in zip(wall, frames)], seed)
        stages[name] = st
    if "decode" in stages:
        stages["extract"]["vs_plain_decode"] = (stages["extract"]["wall_s"]["median"]
                                                / stages["decode"]["wall_s"]["median"])
    return {"videos": rels, "seed": seed, "source_kind": src.kind,
            "transcoded": len(transcoded), "stages": stages,
            "threads": "the reader: one decoding thread and one tracing thread "
                       "(hybrid.video.reader); the plain decode: one"}


LABELS = {
    "transcode": "measured (transcoding the source to MPEG-4 GOP 12 at the read size, on "
                 "this host; `hybrid prepare DATA -o DIR` does it once)",
    "extract": "measured (compressed-domain extraction of the sampled segments on this host: "
               "GOP index, I-frame, MVs, residuals, uint8 codes; warm, median of the drawn "
               "videos)",
    "cache": "measured (reading the sampled segments from the hybrid prepare cache; the "
             "extraction was done earlier)"}


def stages(meas: dict) -> tuple[list[dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The report's host stages (transcode when any, extract) and their bootstrap
    replicates (time, energy) for the per-video intervals."""
    out, reps = [], {}
    for name in ("transcode", "extract"):
        st = meas["stages"].get(name)
        if st is None:
            continue
        label = LABELS["cache" if meas["source_kind"] == "cache" and name == "extract"
                       else name]
        t = uncertainty.replicates(st["wall_s"]["values"], np.median, seed=meas["seed"])
        e = uncertainty.replicates(st["energy_j"]["values"], np.median, seed=meas["seed"])
        how = (f"; {meas['transcoded']} of the {len(meas['videos'])} drawn videos needed it"
               if name == "transcode" else "")
        out.append({"name": name, "time_s": statistics.median(st["wall_s"]["values"]),
                    "energy_j": statistics.median(st["energy_j"]["values"]),
                    "cpu_s": st["cpu_s"]["median"],
                    "source": f"{label}{how}; energy {st['energy_label']}",
                    "interval": uncertainty.interval(
                        t, e, f"bootstrap of the median over {st['videos']} videos drawn at "
                              f"random (seed {meas['seed']})")})
        reps[name] = (t, e)
    return out, reps
