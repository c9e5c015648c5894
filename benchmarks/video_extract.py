"""Extraction speed of the compressed-domain reader against plain decoding.

For one 340x256 MPEG-4 video (GOP 12, no B-frames; synthetic moving textures, or
``--video``), in the same run: frames/s of full-modality extraction (I-frame +
accumulated MV + accumulated residual, CoViAR mode) next to plain PyAV decoding of the
same file to RGB arrays (what a raw-frame pipeline pays), and their cost ratio.
Target: extraction costs at most 2x the decoding.

Two plain decodings, both with PyAV's default decoder settings, as the extraction uses
them (thread_type SLICE, thread_count 0; FFmpeg's MPEG-4 decoder has frame threads
only, so every path decodes on one thread):
- ``decode_rgb``: ``frame.to_ndarray(format="rgb24")`` per frame, the loop a user writes
  (PyAV builds a swscale context, with its own thread pool, per frame), the baseline of
  the target;
- ``decode_rgb_one_context``: one ``VideoReformatter`` for the video, 1 thread, as the
  extraction converts (the same bytes; the like-for-like comparison of what the
  extraction adds: vectors, tracing, MV and residual).
Wall and CPU time (all threads of this process) are both reported: on a shared machine
the CPU figure moves less with the load; the extraction traces on a second thread.

    PYTHONPATH=. python benchmarks/video_extract.py [--frames 240] [--repeat 5] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def decode_rgb(path: Path) -> int:
    import av

    n = 0
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


def decode_rgb_one_context(path: Path) -> int:
    import av
    from av.video.reformatter import VideoReformatter

    n, rgb24 = 0, VideoReformatter()
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            rgb24.reformat(frame, format="rgb24", threads=1).to_ndarray()
            n += 1
    return n


def extract(path: Path, accumulate: bool = True, coviar: bool = True) -> int:
    from hybrid.video.reader import read_gops

    return sum(1 + g.p_frames for g in read_gops(path, accumulate, coviar))


def best_fps(fn, path: Path, repeat: int) -> tuple[float, float, int]:
    """(frames per wall second, frames per CPU second of this process (all threads),
    frames), each the best of ``repeat`` runs. On a shared machine the CPU figure moves
    less with the load than the wall-clock one."""
    walls, cpus, n = [], [], 0
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        n = fn(path)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return n / min(walls), n / min(cpus), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, help="an MPEG-4 GOP-12 video (default: synthetic)")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from hybrid.video.probe import probe
    from hybrid.video.synth import SynthConfig, render_video
    from hybrid.video.transcode import EncodeConfig, encode_mpeg4

    tmp = tempfile.TemporaryDirectory()
    path = args.video
    if path is None:
        path = Path(tmp.name) / "bench.avi"
        cfg = SynthConfig(size=(340, 256), frames=args.frames, radius=40)
        frames = render_video(0, 0, cfg)  # textured object + distractor + jitter + noise
        encode_mpeg4(frames, path, EncodeConfig(size=(340, 256)))
    info = probe(path)
    decode_rgb(path)  # warm up caches
    extract(path)  # compile (or load) the kernels
    dec_fps, dec_cpu, n = best_fps(decode_rgb, path, args.repeat)
    one_fps, one_cpu, _ = best_fps(decode_rgb_one_context, path, args.repeat)
    ext_fps, ext_cpu, m = best_fps(extract, path, args.repeat)
    per_fps, _, _ = best_fps(lambda p: extract(p, accumulate=False), path, args.repeat)
    sub_fps, _, _ = best_fps(lambda p: extract(p, coviar=False), path, args.repeat)
    assert n == m, f"decoded {n} frames but extracted {m}"
    res = {
        "video": str(args.video or "synthetic"), "size": [info.width, info.height],
        "frames": n, "gops": len(info.gops), "repeat": args.repeat, "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "decode_rgb_fps": round(dec_fps, 1),
        "extract_accumulated_fps": round(ext_fps, 1),
        "extract_per_frame_fps": round(per_fps, 1),
        "extract_subpixel_accumulated_fps": round(sub_fps, 1),
        "cost_ratio_extract_vs_decode": round(dec_fps / ext_fps, 2),
        "decode_rgb_fps_cpu": round(dec_cpu, 1),
        "extract_accumulated_fps_cpu": round(ext_cpu, 1),
        "cpu_ratio_extract_vs_decode": round(dec_cpu / ext_cpu, 2),
        "decode_rgb_one_context_fps": round(one_fps, 1),
        "decode_rgb_one_context_fps_cpu": round(one_cpu, 1),
        "cost_ratio_extract_vs_decode_one_context": round(one_fps / ext_fps, 2),
        "cpu_ratio_extract_vs_decode_one_context": round(one_cpu / ext_cpu, 2),
        "decoder_threads": "PyAV default (SLICE, 0): one thread for MPEG-4, every path",
        "target_ratio": 2.0,
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"video {res['video']} {info.width}x{info.height}, {n} frames, "
          f"best of {args.repeat}, load avg {res['load_avg_1m']:.2f} on {res['cpus']} CPUs")
    print(f"plain PyAV decode to RGB arrays     : {dec_fps:8.1f} frames/s")
    print(f"  same, one swscale context         : {one_fps:8.1f} frames/s")
    print(f"extract I + accumulated MV + R      : {ext_fps:8.1f} frames/s")
    print(f"extract per-frame MV + R            : {per_fps:8.1f} frames/s")
    print(f"extract sub-pixel accumulated       : {sub_fps:8.1f} frames/s")
    print(f"cost ratio extraction / decoding    : {dec_fps / ext_fps:8.2f} (target <= 2.0)")
    print(f"CPU-time ratio (all threads)        : {dec_cpu / ext_cpu:8.2f} "
          f"({dec_cpu:.0f} vs {ext_cpu:.0f} frames per CPU second)")
    print(f"ratios against one swscale context  : {one_fps / ext_fps:8.2f} wall, "
          f"{one_cpu / ext_cpu:.2f} CPU")


if __name__ == "__main__":
    main()
