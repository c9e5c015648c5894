"""Videos per second end to end, per stage: the torch path and the STMs on Lava.

The paper's setting (Das Biswas et al., Sec. 4 / Table 1: 224x224 crops of 340x256
videos, 8 segments, 8x1 views; it reports 16.0 videos/s for its base model on a GPU),
``tiny`` and ``base`` (``hybrid.model.HybridConfig``), 101 classes, untrained weights
(the stages' cost does not depend on the weights, except the STMs' spike rates, which
change no dense work here). Synthetic MPEG-4 videos of --frames frames at 340x256
(``hybrid.video.synth``), read as ``hybrid predict`` reads a video.

Stages, seconds per video:
- extract: decode the sampled GOPs, trace motion vectors and residuals, crop
  (``CompressedVideoDataset[i]``, what ``hybrid predict`` does);
- spiking: both STMs (MV, residual) over the 8 segments;
- bridge: STM membrane potentials -> the dense partition's input maps;
- dense: the dense partition.
Paths:
- ``torch``: as ``hybrid predict`` (``HybridModel``, float STMs; GPU when present);
- ``lava_stms``: the STMs on the simulated chip (Lava ``fixed_pt``,
  ``neuro.runner.LavaRunner``, one compiled network per STM, the video's segments side
  by side; compile time reported apart), the bridge from Lava's integer voltages, the
  dense partition in torch. ``deploy/runtime.py`` (onnxruntime dense partition, ``hybrid
  run``, the deployed path proper) is not on this branch yet: the dense stage is torch's.

    PYTHONPATH=$PWD python benchmarks/end_to_end.py [--variants tiny base] [--videos 3]
        [--threads N] [-o runs/end_to_end]

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

STAGES = ("extract", "spiking", "bridge", "dense")
PAPER = {"size": (224, 224), "video_size": (340, 256), "segments": 8, "views": "8x1",
         "classes": 101, "source": "Das Biswas et al., Sec. 4 (16.0 videos/s, base, GPU)"}


def make_videos(out: Path, n: int, frames: int) -> list[str]:
    from hybrid.video.synth import SynthConfig, make_dataset

    make_dataset(out, classes=2, per_class=(n + 1) // 2, seed=0,
                 cfg=SynthConfig(size=PAPER["video_size"], frames=frames))
    return sorted(str(p.relative_to(out)) for p in out.glob("*/*.avi"))[:n]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def torch_path(model, sample: dict, device: str) -> dict:
    """One video as ``hybrid predict`` runs it, stage by stage."""
    from hybrid.evaluate import views

    secs = {}
    t0 = time.perf_counter()
    b = views(sample, model.cfg.segments, model.cfg.size, 1)
    b = {k: v.to(device) for k, v in b.items()}
    v_mv, v_res, _ = model.forward_spiking(b["mv"], b["residual"])
    sync(device)
    t1 = time.perf_counter()
    secs["spiking"], secs["bridge"] = t1 - t0, 0.0  # the bridge is inside the model
    logits = model.dense(b["iframe"], v_mv, v_res)
    torch.softmax(logits, dim=1).mean(0).cpu()
    secs["dense"] = time.perf_counter() - t1
    return secs


@torch.no_grad()
def lava_stm_path(model, runners: dict, sample: dict) -> dict:
    """One video with the STMs on Lava fixed_pt, the bridge, the dense partition."""
    from hybrid.evaluate import views

    b = views(sample, model.cfg.segments, model.cfg.size, 1)
    secs = dict.fromkeys(("spiking", "bridge"), 0.0)
    v = {}
    for key, runner in runners.items():  # key: "mv" or "residual"
        x = b[key]  # (1, S, T, C, H, W)
        t0 = time.perf_counter()
        xs = np.ascontiguousarray(x[0].permute(0, 2, 3, 4, 1).numpy())  # (S, C, H, W, T)
        res = runner.run(xs)
        t1 = time.perf_counter()
        v[key] = torch.from_numpy(res.v_int / runner.net.layers[-1].v_scale).float()[None]
        secs["spiking"] += t1 - t0
        secs["bridge"] += time.perf_counter() - t1
    t0 = time.perf_counter()
    logits = model.dense(b["iframe"], v.get("mv"), v.get("residual"))
    torch.softmax(logits, dim=1).mean(0)
    secs["dense"] = time.perf_counter() - t0
    return secs


def bench_variant(variant: str, data: Path, videos: list[str], device: str,
                  tiles: int) -> dict:
    from hybrid.data.dataset import CompressedVideoDataset
    from hybrid.model import HybridConfig, HybridModel
    from neuro.export import export_stm
    from neuro.runner import LavaRunner

    torch.manual_seed(0)
    cfg = HybridConfig(variant=variant, num_classes=PAPER["classes"],
                       segments=PAPER["segments"], size=PAPER["size"])
    model = HybridModel(cfg).eval()
    ds = CompressedVideoDataset(data, [(v, 0) for v in videos], PAPER["segments"],
                                train=False, crop=PAPER["size"][0],
                                video_size=PAPER["video_size"])
    out = {"variant": variant, "stm_strides": list(cfg.stm["strides"]),
           "stm_output": list(cfg.stm_output_size()), "paths": {}}
    samples, extract = [], []
    for i in range(len(ds)):
        t0 = time.perf_counter()
        samples.append(ds[i])
        extract.append(time.perf_counter() - t0)
        print(f"  {variant}: extracted video {i + 1}/{len(ds)} in {extract[-1]:.2f} s",
              flush=True)
    # torch path
    model.to(device)
    torch_path(model, samples[0], device)  # warm up
    rows = [torch_path(model, s, device) for s in samples]
    out["paths"]["torch"] = summarise(rows, extract, device=device)
    print(f"  {variant}: torch path {out['paths']['torch']['videos_per_s']:.2f} videos/s",
          flush=True)
    # STMs on Lava fixed_pt (CPU), dense partition in torch (CPU)
    model.to("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        runners = {}
        t0 = time.perf_counter()
        try:
            for key, branch in (("mv", model.stm_mv), ("residual", model.stm_res)):
                path = export_stm(branch.stm, Path(tmp) / f"{key}.h5", PAPER["size"])
                runners[key] = LavaRunner(path, steps=cfg.timesteps, tiles=tiles)
            compile_s = time.perf_counter() - t0
            lava_stm_path(model, runners, samples[0])  # warm up
            rows = []
            for i, s in enumerate(samples):
                rows.append(lava_stm_path(model, runners, s))
                print(f"  {variant}: STMs on Lava, video {i + 1}/{len(samples)}: "
                      f"spiking {rows[-1]['spiking']:.2f} s", flush=True)
        finally:
            for r in runners.values():
                r.close()
    out["paths"]["lava_stms"] = summarise(rows, extract, device="cpu",
                                         lava_compile_s=compile_s, lava_tiles=tiles,
                                         lava_conv="fused")
    return out


def summarise(rows: list[dict], extract: list[float], **extra) -> dict:
    stages = {"extract": float(np.mean(extract))}
    stages.update({k: float(np.mean([r[k] for r in rows])) for k in STAGES[1:]})
    total = sum(stages.values())
    return {"seconds_per_video": stages, "total_s_per_video": total,
            "videos_per_s": 1.0 / total, "videos": len(rows), **extra}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, data = [], []
    for r in results:
        for name, p in r["paths"].items():
            labels.append(f"{r['variant']}, {name}\n{p['videos_per_s']:.2f} videos/s")
            data.append([p["seconds_per_video"][s] for s in STAGES])
    data = np.array(data)
    fig, ax = plt.subplots(figsize=(8, 1.1 * len(labels) + 1.2))
    left = np.zeros(len(labels))
    for j, stage in enumerate(STAGES):
        ax.barh(labels, data[:, j], left=left, label=stage)
        left += data[:, j]
    for i, total in enumerate(left):
        ax.text(total, i, f" {total:.2f} s", va="center", fontsize=9)
    ax.set_xlim(0, left.max() * 1.18)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per video (224x224, 8 segments, 8x1 views)")
    ax.set_title(f"End to end per stage ({results[0]['machine']})", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["tiny", "base"])
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--frames", type=int, default=96, help="frames per video (8 GOPs of 12)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of this process [default: torch's]")
    ap.add_argument("--tiles", type=int, default=PAPER["segments"],
                    help="Lava: sequences side by side (a video's segments)")
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/end_to_end"))
    args = ap.parse_args()
    import neuro  # noqa: F401  (the lava compatibility layer, before any lava import)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = (f"{os.cpu_count()} CPUs, torch {torch.get_num_threads()} threads, "
               f"{torch.cuda.get_device_name(0) if device == 'cuda' else 'no GPU'}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "videos"
        videos = make_videos(data, args.videos, args.frames)
        for variant in args.variants:
            r = bench_variant(variant, data, videos, device, args.tiles)
            r.update(machine=machine, load_average_1_5_15min=list(os.getloadavg()))
            results.append(r)
    rep = {"setting": PAPER, "torch_threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "device": device, "results": results}
    (args.out / "end_to_end.json").write_text(json.dumps(rep, indent=2))
    plot(results, args.out / "end_to_end.png")
    print(f"{'variant':<8}{'path':<10}" + "".join(f"{s:>10}" for s in STAGES)
          + f"{'videos/s':>10}")
    for r in results:
        for name, p in r["paths"].items():
            print(f"{r['variant']:<8}{name:<10}"
                  + "".join(f"{p['seconds_per_video'][s]:>10.3f}" for s in STAGES)
                  + f"{p['videos_per_s']:>10.3f}")
    print(f"({machine}; JSON and plot in {args.out})")


if __name__ == "__main__":
    main()
