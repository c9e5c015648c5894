"""Extraction cost of the compressed-domain reader against a like-for-like plain decode.

For one MPEG-4 video per size (GOP 12, no B-frames; synthetic moving textures at 128x96,
340x256 and 1280x720, or ``--video``), in one process: CPU time and wall time per frame
of full-modality extraction (I-frame + accumulated MV + accumulated residual, CoViAR
mode, what ``hybrid extract`` and ``hybrid prepare`` read) against a plain PyAV decode
of the same file to RGB arrays, and their ratio. Target: CPU ratio <= 1.0 at every size.
Also one 8-segment evaluation clip read as the dataset reads a folder of videos (the
sampled GOPs only, the 224 px centre crop to uint8 codes) against the plain decode of the
whole video: target <= 0.5 (``--frames`` sets the videos' length: 240 frames = 20 GOPs by
default). The floor of that ratio: the STM reads every P-frame of a sampled GOP, so a
clip decodes 8 of the video's G GOPs at the extraction's cost, 8/G x the ratio above.

The like-for-like decode (``decode_rgb``): PyAV's default decoder settings, as the
extraction uses them (FFmpeg's MPEG-4 decoder has frame threads only: one thread), one
``VideoReformatter`` for the video, 1 thread, ``rgb24`` (the converter reused across
frames, the bytes the extraction reads), ``to_ndarray`` per frame. Also reported: the
naive loop a user writes (``frame.to_ndarray(format="rgb24")``, a converter per frame).

What the model reads decides the work (``hybrid.model.HybridConfig.reads``,
:class:`hybrid.video.reader.Reads`): the STM model (and ``hybrid extract``) every
P-frame's MV and residual of a GOP (``all``, the row above); a model without the
residual modality the MVs only (``mv``: no P-frame converted to RGB); a model without a
temporal module (``--temporal none``) the GOP's last P-frame only (``last``). Each is
compared with the plain decode of the same frames (``decode_rgb_reads``: the frames up
to the last one read decoded, the I-frame and the P-frames read converted to RGB), the
issue's like-for-like definition; ``all`` is that of the whole video.

Every number is the median of ``--repeat`` (>= 5) warm runs (the first run, which loads
the compiled kernels, is reported apart as ``first_run_s``); CPU time is this process's,
all threads; the 1-minute load average is printed with each size (the machine is shared).

    PYTHONPATH=. python benchmarks/video_extract.py [--sizes 128x96,340x256,1280x720]
        [--frames 240] [--repeat 7] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def decode_rgb(path: Path) -> int:
    """The like-for-like plain decode: one rgb24 converter, 1 thread, arrays per frame."""
    import av
    from av.video.reformatter import VideoReformatter

    n, rgb24 = 0, VideoReformatter()
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            rgb24.reformat(frame, format="rgb24", threads=1).to_ndarray()
            n += 1
    return n


def decode_rgb_reads(path: Path, reads) -> int:
    """The plain decode of the frames a :class:`~hybrid.video.reader.Reads` reads: per
    GOP, the packets up to the last P-frame read decoded (the rest skipped up to the
    next key frame), the I-frame and the P-frames read converted to RGB arrays (one
    rgb24 converter, 1 thread); the last P-frame (slot -1) converted once the GOP ends."""
    import av
    from av.video.reformatter import VideoReformatter

    n, rgb24 = 0, VideoReformatter()
    slots = reads.slots
    last = slots is not None and slots[-1:] == (-1,)
    pos = set(range(11)) if slots is None else {v for v in slots if v >= 0}
    final = 10 if slots is None or last else max(pos, default=-1)
    with av.open(str(path)) as c:
        p, held = -1, None
        for pkt in c.demux(c.streams.video[0]):
            if pkt.size and not pkt.is_keyframe and p > final:
                n += 1  # after the last P-frame read: not decoded (counted: the
                continue  # numbers are per frame of the video, as extract's)
            for frame in pkt.decode():
                if pkt.is_keyframe:
                    if held is not None:
                        rgb24.reformat(held, format="rgb24", threads=1).to_ndarray()
                    p, held = -1, None
                if p in pos or p == -1:
                    rgb24.reformat(frame, format="rgb24", threads=1).to_ndarray()
                if last and p >= 0:
                    held = frame
                p += 1
                n += 1
        if held is not None:
            rgb24.reformat(held, format="rgb24", threads=1).to_ndarray()
    return n


def decode_rgb_naive(path: Path) -> int:
    """The loop a user writes: ``to_ndarray(format="rgb24")`` (a converter per frame)."""
    import av

    n = 0
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


def extract(path: Path, accumulate: bool = True, coviar: bool = True, reads=None) -> int:
    """Frames in the video (decoded or skipped); ``reads``: what the model reads."""
    from hybrid.video.reader import ALL, read_gops

    return sum(1 + g.p_frames for g in read_gops(path, accumulate, coviar,
                                                 reads=reads or ALL))


def read_sets() -> dict:
    """name -> (the model configurations that read it, :class:`Reads`)."""
    from hybrid.model import HybridConfig

    return {name: (what, HybridConfig(temporal=t, modalities=m).reads())
            for name, what, t, m in (
                ("mv", "modalities i,mv (no residual)", "stm", ("i", "mv")),
                ("last", "temporal none (the last P-frame)", "none", ("i", "mv", "r")))}


def clip_reader(segments: int):
    """One evaluation clip of ``segments`` GOPs as the dataset reads a folder of videos:
    ``CompressedVideoDataset.__getitem__`` on the video at its own size (the sampled
    GOPs decoded into the previous clip's arrays, the centre crop coded to uint8 on the
    crop only; the GOP index, packets only, read once per video as the dataset caches
    it). Returns a function of the path giving 1 (one clip)."""
    from hybrid.data.dataset import CompressedVideoDataset
    from hybrid.video.probe import probe

    datasets = {}

    def clip(path: Path) -> int:
        if path not in datasets:
            info = probe(path)
            datasets[path] = CompressedVideoDataset.one_video(
                path, segments, video_size=(info.width, info.height), crop=224)
        datasets[path][0]
        return 1
    return clip


def timed(fn, path: Path, repeat: int) -> dict:
    """Median CPU (all threads) and wall seconds per frame over ``repeat`` runs."""
    walls, cpus, n = [], [], 0
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        n = fn(path)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {"frames": n, "cpu_ms_per_frame": statistics.median(cpus) / n * 1e3,
            "wall_ms_per_frame": statistics.median(walls) / n * 1e3,
            "cpu_ms_spread": [min(cpus) / n * 1e3, max(cpus) / n * 1e3]}


def synthetic(size: tuple[int, int], frames: int, tmp: Path) -> Path:
    from hybrid.video.synth import SynthConfig, render_video
    from hybrid.video.transcode import EncodeConfig, encode_mpeg4

    path = tmp / f"bench-{size[0]}x{size[1]}.avi"
    cfg = SynthConfig(size=size, frames=frames, radius=max(8, size[1] // 6))
    encode_mpeg4(render_video(0, 0, cfg), path, EncodeConfig(size=size))
    return path


def measure(path: Path, repeat: int) -> dict:
    from hybrid.video.probe import probe
    from hybrid.video.seek import gop_index

    info = probe(path)
    t = time.perf_counter()
    extract(path)  # loads (or compiles) the kernels
    first = time.perf_counter() - t
    decode_rgb(path)  # warm the file in the page cache
    row = {"size": [info.width, info.height], "first_run_s": round(first, 3)}
    for name, fn in (("decode_rgb", decode_rgb), ("decode_rgb_naive", decode_rgb_naive),
                     ("extract_accumulated", extract),
                     ("extract_per_frame", lambda p: extract(p, accumulate=False))):
        row[name] = timed(fn, path, repeat)
    row["reads"] = {}
    for name, (what, reads) in read_sets().items():
        d = timed(lambda p, r=reads: decode_rgb_reads(p, r), path, repeat)
        e = timed(lambda p, r=reads: extract(p, reads=r), path, repeat)
        row["reads"][name] = {
            "model": what, "reads": {"slots": reads.slots, "mv": reads.mv,
                                     "residual": reads.residual},
            "decode_same_frames": d, "extract": e,
            "cpu_ratio": round(e["cpu_ms_per_frame"] / d["cpu_ms_per_frame"], 3),
            # the reader doing everything (as before Reads) against the same baseline
            "full_read_cpu_ratio": round(row["extract_accumulated"]["cpu_ms_per_frame"]
                                         / d["cpu_ms_per_frame"], 3),
            "wall_ratio": round(e["wall_ms_per_frame"] / d["wall_ms_per_frame"], 3)}
    reader = clip_reader(8)
    reader(path)  # warm: the GOP index read, the codes' tables built
    clip = timed(reader, path, repeat)  # "frames" is 1 clip: ms per clip
    whole = {k: row["decode_rgb"][k] * row["decode_rgb"]["frames"]
             for k in ("cpu_ms_per_frame", "wall_ms_per_frame")}
    row["clip_8_segments"] = {
        "gops": len(gop_index(path)),
        "cpu_ms": clip["cpu_ms_per_frame"], "wall_ms": clip["wall_ms_per_frame"],
        "whole_video_decode_cpu_ms": whole["cpu_ms_per_frame"],
        "whole_video_decode_wall_ms": whole["wall_ms_per_frame"],
        "cpu_ratio_vs_whole_decode": round(clip["cpu_ms_per_frame"]
                                           / whole["cpu_ms_per_frame"], 3),
        "wall_ratio_vs_whole_decode": round(clip["wall_ms_per_frame"]
                                            / whole["wall_ms_per_frame"], 3),
        "target_cpu_ratio": 0.5}
    base = row["decode_rgb"]
    for name in ("extract_accumulated", "extract_per_frame", "decode_rgb_naive"):
        row[name]["cpu_ratio_vs_decode_rgb"] = round(
            row[name]["cpu_ms_per_frame"] / base["cpu_ms_per_frame"], 3)
        row[name]["wall_ratio_vs_decode_rgb"] = round(
            row[name]["wall_ms_per_frame"] / base["wall_ms_per_frame"], 3)
    row["load_avg_1m"] = os.getloadavg()[0]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, help="an MPEG-4 GOP-12 video (default: synthetic)")
    ap.add_argument("--sizes", default="128x96,340x256,1280x720",
                    help="synthetic videos' sizes, WxH, comma-separated")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.repeat < 5:
        ap.error("--repeat must be at least 5 (the median of >= 5 runs)")

    res = {"repeat": args.repeat, "cpus": os.cpu_count(), "statistic": "median",
           "baseline": "decode_rgb (PyAV decode, one rgb24 converter, 1 thread)",
           "target_cpu_ratio": 1.0, "videos": []}
    with tempfile.TemporaryDirectory() as tmp:
        if args.video:
            videos = [args.video]
        else:
            videos = [synthetic(tuple(int(v) for v in s.split("x")), args.frames, Path(tmp))
                      for s in args.sizes.split(",")]
        for path in videos:
            row = {"video": str(path if args.video else "synthetic"), **measure(path, args.repeat)}
            res["videos"].append(row)
            e, d = row["extract_accumulated"], row["decode_rgb"]
            per = row["extract_per_frame"]["cpu_ratio_vs_decode_rgb"]
            print(f"{row['size'][0]}x{row['size'][1]} {e['frames']} frames, median of "
                  f"{args.repeat}, load avg {row['load_avg_1m']:.2f} on {res['cpus']} CPUs: "
                  f"decode {d['cpu_ms_per_frame']:.3f} ms CPU {d['wall_ms_per_frame']:.3f} "
                  f"wall; extract {e['cpu_ms_per_frame']:.3f} CPU "
                  f"{e['wall_ms_per_frame']:.3f} wall; reads all (STM model, hybrid extract): "
                  f"ratio CPU "
                  f"{e['cpu_ratio_vs_decode_rgb']:.2f} wall {e['wall_ratio_vs_decode_rgb']:.2f}"
                  f" (per-frame mode CPU {per:.2f})",
                  flush=True)
            for name, r in row["reads"].items():
                print(f"  reads {name} ({r['model']}): extract "
                      f"{r['extract']['cpu_ms_per_frame']:.3f} ms CPU, plain decode of the "
                      f"same frames {r['decode_same_frames']['cpu_ms_per_frame']:.3f}; ratio "
                      f"CPU {r['cpu_ratio']:.2f} wall {r['wall_ratio']:.2f} (reading "
                      f"everything: CPU {r['full_read_cpu_ratio']:.2f})", flush=True)
            c = row["clip_8_segments"]
            print(f"  8-segment clip ({c['gops']} GOPs): {c['cpu_ms']:.1f} ms CPU "
                  f"{c['wall_ms']:.1f} wall; whole-video decode "
                  f"{c['whole_video_decode_cpu_ms']:.1f} ms CPU; ratio CPU "
                  f"{c['cpu_ratio_vs_whole_decode']:.2f} wall "
                  f"{c['wall_ratio_vs_whole_decode']:.2f} (target <= 0.5)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
