"""Videos per second end to end, per stage: the torch path and the deployed path.

The paper's setting (Das Biswas et al., Sec. 4 / Table 1, ``hybrid.training.recipes.PRESETS
["paper"]``: 224x224 crops of 340x256 videos, 8 segments, 8x1 views; it reports 16.0
videos/s for its base model on a GPU), ``tiny`` and ``base`` (``hybrid.model.
HybridConfig``), 101 classes, UNTRAINED weights (the stages' cost does not depend on
the weights, except the STMs' spike rates, which change no work in Lava's dense-vector
simulation nor in torch). Synthetic MPEG-4 videos of --frames frames at 340x256
(``hybrid.video.synth``), read as ``hybrid predict`` and ``hybrid run`` read a video.

Stages, seconds per video:
- extract: decode the sampled GOPs, trace motion vectors and residuals, crop
  (``CompressedVideoDataset[i]``; the same for both paths, measured once);
- spiking: both STMs (MV, residual) over the 8 segments;
- bridge: STM membrane potentials -> the dense partition's input maps;
- dense: the dense partition.
Paths:
- ``torch``: as ``hybrid predict`` (``HybridModel``, float STMs, GPU when present; the
  bridge is a reshape inside the model, counted in spiking);
- ``deployed``: as ``hybrid run`` (the model written as a deploy artifact,
  ``deploy.artifact.folder.write_artifact``, loaded and run by
  ``deploy.runtime.engine.HybridRuntime``:
  each STM on Lava ``fixed_pt``, fused ConvLIF processes, the 8 segments side by side;
  the bridge from Lava's integer voltages; the dense partition in onnxruntime, CPU).
  Deploy (export) and Lava compile times are reported apart.

CPU seconds per video are measured beside wall time (this process, all its threads, plus
the Lava processes of the deployed path): the 2 cores of the development machine are
shared, and CPU time moves less with the other jobs than wall time.

--quick measures 1 video at 112x112 crops (not the paper's setting; the JSON says so).

    PYTHONPATH=$PWD python benchmarks/end_to_end.py [--variants tiny base] [--videos 2]
        [--paths torch deployed] [--threads N] [--quick] [-o runs/end_to_end]

Writes OUT/end_to_end.json and OUT/end_to_end.png; prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hybrid.training.recipes import PRESETS

STAGES = ("extract", "spiking", "bridge", "dense")
PATHS = ("torch", "deployed")
PAPER = PRESETS["paper"]
CLASSES = 101  # UCF-101
SOURCE = ("Das Biswas et al., Sec. 4 / Table 1 (16.0 videos/s, base, GPU); "
          "hybrid/training/recipes.py")


def make_videos(out: Path, n: int, frames: int, size: tuple[int, int]) -> list[str]:
    from hybrid.video.synth import SynthConfig, make_dataset

    make_dataset(out, classes=2, per_class=max(2, (n + 1) // 2), seed=0,
                 cfg=SynthConfig(size=size, frames=frames))
    return sorted(str(p.relative_to(out)) for p in out.glob("*/*.avi"))[:n]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def lava_cpu_s(rt) -> float:
    """CPU seconds used so far by the Lava processes of a HybridRuntime."""
    return sum(r.actor_cpu_s() for r in rt.runners.values())


def lava_processes(rt) -> int:
    from neuro.shutdown import runtime_actors

    return sum(len(runtime_actors(r.inj.runtime)) for r in rt.runners.values())


@torch.no_grad()
def torch_path(model, sample: dict, device: str) -> tuple[dict, dict]:
    """One video as ``hybrid predict`` runs it (``predict_scores``), stage by stage:
    (wall seconds, CPU seconds of this process)."""
    from hybrid.training.evaluate import views

    t0, c0 = time.perf_counter(), time.process_time()
    b = views(sample, model.cfg.segments, model.cfg.size, 1)
    b = {k: v.to(device) for k, v in b.items()}
    v_mv, v_res, _ = model.forward_spiking(b["mv"], b["residual"])
    sync(device)
    t1, c1 = time.perf_counter(), time.process_time()
    logits = model.dense(b["iframe"], v_mv, v_res)
    torch.softmax(logits, dim=1).mean(0).cpu()
    t2, c2 = time.perf_counter(), time.process_time()
    return ({"spiking": t1 - t0, "bridge": 0.0, "dense": t2 - t1},
            {"spiking": c1 - c0, "dense": c2 - c1})


def deployed_path(rt, sample: dict) -> tuple[dict, dict]:
    """One video as ``hybrid run`` runs it (``HybridRuntime.run``): (wall seconds per
    stage, CPU seconds: this process (host side, bridge, onnxruntime) and the Lava
    processes)."""
    c0, l0 = time.process_time(), lava_cpu_s(rt)
    out = rt.run(sample)
    return dict(out.seconds), {"host": time.process_time() - c0,
                               "lava_processes": lava_cpu_s(rt) - l0}


def build_artifact(model, out: Path):
    from deploy.artifact.folder import write_artifact
    from hybrid.ondevice.artifacts import BRANCHES, input_spec

    spec = input_spec(model)
    stms = {m: getattr(model, BRANCHES[m]).stm for m in spec.stm_modalities}
    return write_artifact(out, stms, model.dense, spec, [f"class{i}" for i in range(CLASSES)],
                          model_config=model.cfg.to_dict())


def bench_variant(variant: str, data: Path, videos: list[str], device: str,
                  crop: int, video_size: tuple[int, int], paths: list[str]) -> dict:
    from hybrid.data.dataset import CompressedVideoDataset
    from hybrid.model import HybridConfig, HybridModel

    torch.manual_seed(0)
    cfg = HybridConfig(variant=variant, num_classes=CLASSES, segments=PAPER.segments,
                       size=(crop, crop))
    model = HybridModel(cfg).eval()
    ds = CompressedVideoDataset(data, [(v, 0) for v in videos], PAPER.segments,
                                train=False, crop=crop, video_size=video_size)
    out = {"variant": variant, "stm_strides": list(cfg.stm["strides"]),
           "stm_output": list(cfg.stm_output_size()), "paths": {}}
    samples, extract, extract_cpu = [], [], []
    for i in range(len(ds)):
        t0, c0 = time.perf_counter(), time.process_time()
        samples.append(ds[i])
        extract.append(time.perf_counter() - t0)
        extract_cpu.append(time.process_time() - c0)
        print(f"  {variant}: extracted video {i + 1}/{len(ds)} in {extract[-1]:.2f} s",
              flush=True)
    if "torch" in paths:  # hybrid predict
        model.to(device)
        torch_path(model, samples[0], device)  # warm up
        rows = [torch_path(model, s, device) for s in samples]
        out["paths"]["torch"] = summarise(rows, extract, extract_cpu, device=device,
                                          torch_threads=torch.get_num_threads())
        print(f"  {variant}: torch path {out['paths']['torch']['videos_per_s']:.3f} videos/s",
              flush=True)
    if "deployed" in paths:
        out["paths"]["deployed"] = deployed_run(variant, model.to("cpu"), samples, extract,
                                                extract_cpu)
    return out


def deployed_run(variant: str, model, samples: list[dict], extract: list[float],
                 extract_cpu: list[float]) -> dict:
    """The model deployed (artifact written) and run by ``HybridRuntime``, as ``hybrid
    run`` runs it (Lava STMs, bridge, onnxruntime dense)."""
    from deploy.runtime.engine import HybridRuntime

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        art = build_artifact(model, Path(tmp) / "artifact")
        deploy_s = time.perf_counter() - t0
        print(f"  {variant}: deployed in {deploy_s:.1f} s; compiling Lava", flush=True)
        with HybridRuntime(art) as rt:
            deployed_path(rt, samples[0])  # warm up
            rows = []
            for i, s in enumerate(samples):
                rows.append(deployed_path(rt, s))
                print(f"  {variant}: deployed, video {i + 1}/{len(samples)}: "
                      + ", ".join(f"{k} {v:.2f} s" for k, v in rows[-1][0].items()), flush=True)
            providers = rt.dense.session.get_providers()
            threads = rt.dense.session.get_session_options().intra_op_num_threads
            extra = {"device": "cpu (Lava fixed_pt processes; onnxruntime "
                               f"{', '.join(providers)})",
                     "deploy_s": deploy_s, "lava_compile_s": rt.compile_s,
                     "lava_conv": "fused", "lava_tiles": rt.runners["mv"].tiles,
                     "lava_processes": lava_processes(rt),
                     "onnxruntime_intra_op_threads": threads or f"default ({os.cpu_count()})",
                     "torch_threads_in_lava_processes": 1}
    rep = summarise(rows, extract, extract_cpu, **extra)
    print(f"  {variant}: deployed path {rep['videos_per_s']:.3f} videos/s", flush=True)
    return rep


def summarise(rows: list[tuple[dict, dict]], extract: list[float], extract_cpu: list[float],
              **extra) -> dict:
    stages = {"extract": float(np.mean(extract))}
    stages.update({k: float(np.mean([r[0][k] for r in rows])) for k in STAGES[1:]})
    cpu = {"extract": float(np.mean(extract_cpu))}
    cpu.update({k: float(np.mean([r[1][k] for r in rows])) for k in rows[0][1]})
    total, cpu_total = sum(stages.values()), sum(cpu.values())
    return {"seconds_per_video": stages, "total_s_per_video": total,
            "videos_per_s": 1.0 / total, "cpu_seconds_per_video": cpu,
            "cpu_total_s_per_video": cpu_total, "videos_per_cpu_s": 1.0 / cpu_total,
            "videos": len(rows), **extra}


def plot(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = rep["results"]
    labels, data, cpu = [], [], []
    for r in results:
        for name, p in r["paths"].items():
            labels.append(f"{r['variant']}, {name}\n{p['videos_per_s']:.3f} videos/s")
            data.append([p["seconds_per_video"][s] for s in STAGES])
            cpu.append(p["cpu_total_s_per_video"])
    data = np.array(data)
    fig, ax = plt.subplots(figsize=(8.5, 1.0 * len(labels) + 1.6))
    left = np.zeros(len(labels))
    for j, stage in enumerate(STAGES):
        ax.barh(labels, data[:, j], left=left, label=stage)
        left += data[:, j]
    for i, (total, c) in enumerate(zip(left, cpu)):
        ax.text(total, i, f" {total:.2f} s wall\n {c:.2f} s CPU", va="center", fontsize=8)
    ax.set_xlim(0, left.max() * 1.25)
    ax.invert_yaxis()
    s = rep["setting"]
    ax.set_xlabel(f"seconds per video (wall; {s['crop']}x{s['crop']} crops, "
                  f"{s['segments']} segments, views {s['views']}"
                  f"{'' if s['paper_setting'] else ', NOT the paper setting'})")
    load = [r["load_average_1_5_15min"][0] for r in results]
    ax.set_title(f"End to end per stage, untrained models ({rep['machine']};\n"
                 f"1-min load average {min(load):.1f} to {max(load):.1f} after each variant)",
                 fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["tiny", "base"])
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    ap.add_argument("--frames", type=int, default=96, help="frames per video (8 GOPs of 12)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of this process [default: torch's]")
    ap.add_argument("--quick", action="store_true",
                    help="1 video at 112x112 crops (a smoke run, not the paper's setting)")
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/end_to_end"))
    args = ap.parse_args()
    import neuro  # noqa: F401  (the lava compatibility layer, before any lava import)

    if args.threads:
        torch.set_num_threads(args.threads)
    crop, n_videos = (112, 1) if args.quick else (PAPER.size, args.videos)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = (f"{os.cpu_count()} CPUs, torch {torch.get_num_threads()} threads, "
               f"{torch.cuda.get_device_name(0) if device == 'cuda' else 'no GPU'}")
    args.out.mkdir(parents=True, exist_ok=True)
    setting = {"crop": crop, "video_size": list(PAPER.video_size), "segments": PAPER.segments,
               "views": f"{PAPER.views[0]}x{PAPER.views[1]}", "classes": CLASSES,
               "videos": n_videos, "frames_per_video": args.frames,
               "paper_setting": crop == PAPER.size, "weights": "untrained (timing only)",
               "source": SOURCE}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "videos"
        videos = make_videos(data, n_videos, args.frames, PAPER.video_size)
        for variant in args.variants:
            r = bench_variant(variant, data, videos, device, crop, PAPER.video_size,
                              args.paths)
            r.update(load_average_1_5_15min=list(os.getloadavg()))
            results.append(r)
    rep = {"setting": setting, "machine": machine, "torch_threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "device": device, "results": results}
    (args.out / "end_to_end.json").write_text(json.dumps(rep, indent=2))
    plot(rep, args.out / "end_to_end.png")
    print(f"{'variant':<8}{'path':<10}" + "".join(f"{s:>10}" for s in STAGES)
          + f"{'videos/s':>10}{'CPU s':>8}")
    for r in results:
        for name, p in r["paths"].items():
            print(f"{r['variant']:<8}{name:<10}"
                  + "".join(f"{p['seconds_per_video'][s]:>10.3f}" for s in STAGES)
                  + f"{p['videos_per_s']:>10.3f}{p['cpu_total_s_per_video']:>8.2f}")
    print(f"({machine}; load {os.getloadavg()}; JSON and plot in {args.out})")


if __name__ == "__main__":
    main()
