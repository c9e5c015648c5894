"""The paper's STM ablations (poster, STM table) on one synthetic set: trains the `tiny`
hybrid model with each temporal module, per seed, and reports held-out top-1 and energy
per video beside the paper's UCF-101 top-1.

    python benchmarks/ablations.py [-o OUT] [--epochs N] [--seeds K] [--long]

Variants (`hybrid train` switches): STM (`--temporal stm`), STM with fixed threshold and
leak (`--fixed-lif`), a ConvLSTM in place of the STM (`--temporal lstm`), one common STM
(`--temporal common`), no STM (`--temporal none`). Energy per video (one view, preset
45nm-fp32, the paper's Horowitz figures): the profiler (`hybrid.ondevice.energy.profile_model`,
ACs from the spikes the STMs emit on the held-out videos, MACs of the rest) for the
spiking variants; MACs x 4.6 pJ of the whole model (`hybrid.model.count`, as `hybrid
summary`) for the ConvLSTM and no-STM variants, which have no spiking part.

The synthetic set is the harder setting of `hybrid synth` (:data:`HARD`: subtler motion,
more distractors, more noise, 2-GOP clips): on the default set the tiny model reaches
100 % held-out (docs/benchmarks.md), which would tell no variant apart. Writes
OUT/ablations.json and OUT/ablations.png. The default runs in minutes on 2 CPU cores;
`--long` trains longer, on more videos and seeds.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

# hybrid synth options of the benchmark's set: `hybrid synth OUT --classes 8 --size 96x64
# --frames 24 --speed 0.5 --distractors 3 --noise 6 --jitter 0.3`
HARD = {"classes": 8, "size": (96, 64), "frames": 24, "speed": 0.5, "distractors": 3,
        "noise": 6.0, "jitter": 0.3}

# Paper's values: "Learning Unified Spatio-temporal Representations for Efficient
# Compressed Video Understanding" (Das Biswas et al.), poster, STM ablation table
# (../shared/paper/poster.txt): UCF-101 top-1 [%].
PAPER_SOURCE = "Das Biswas et al., poster (poster.txt), STM ablation table, UCF-101 top-1"
VARIANTS = [  # (name, HybridConfig overrides, paper top-1 %); the costliest (ConvLSTM) last
    ("STM", {"temporal": "stm"}, 95.63),
    ("W/o STM", {"temporal": "none"}, 88.61),
    ("Common STM", {"temporal": "common"}, 93.45),
    ("STM (fixed v_th, leak)", {"temporal": "stm", "fixed": True}, 93.91),
    ("STM -> ConvLSTM", {"temporal": "lstm"}, 93.92),
]


def make_set(out: Path, per_class: int, seed: int, echo=print) -> Path:
    """The HARD synthetic set (once) extracted into OUT/cache.h5; returns the cache."""
    from hybrid.data.cache import PrepareConfig, prepare
    from hybrid.video.synth import SynthConfig, make_dataset

    data, cache = out / "data", out / "cache.h5"
    cfg = SynthConfig(size=HARD["size"], frames=HARD["frames"], speed=HARD["speed"],
                      distractors=HARD["distractors"], noise=HARD["noise"],
                      jitter=HARD["jitter"])
    if not (data / "testlist01.txt").is_file():
        s = make_dataset(data, HARD["classes"], per_class, seed, cfg)
        echo(f"synthetic set: {s['videos']} videos ({s['train']} train, {s['test']} held out)")
    r = prepare(data, cache, PrepareConfig(size=HARD["size"]), workers=2)
    assert not r["failed"], f"synthetic videos failed to extract: {r['failed'][:2]}"
    return cache


def model_config(over: dict, classes: int, segments: int, size: int):
    from hybrid.model import STM_DEFAULTS, HybridConfig

    stm = {**STM_DEFAULTS, **({"learn_neuron": False} if over.get("fixed") else {})}
    return HybridConfig(variant="tiny", num_classes=classes, segments=segments,
                        size=(size, size), temporal=over["temporal"], stm=stm)


def energy_per_video(model, val_ds, videos: int) -> tuple[float, str]:
    """(J per video, how it was counted) under the paper's 45 nm preset."""
    from deploy.presets import energy_preset
    from hybrid.model import count
    from hybrid.ondevice.energy import profile_model

    p = energy_preset("45nm-fp32")
    if model.cfg.spiking:
        rep = profile_model(model.eval(), val_ds, limit=videos).report(p)
        return rep["per_video"]["energy_j"]["mean"], "profiler: measured spikes (ACs) + MACs"
    macs = sum(c.macs for c in count(model.cfg)[0])
    return macs * p.mac_j, "all dense: MACs (hybrid summary) x 4.6 pJ"


def run_variant(cache: Path, run: Path, name: str, over: dict, seed: int, args) -> dict:
    import torch

    from hybrid.data.dataset import open_split
    from hybrid.training.evaluate import evaluate
    from hybrid.training.train import TrainConfig, train

    train_ds, classes = open_split(cache, "train", args.segments, True, args.size, seed=seed)
    val_ds, _ = open_split(cache, "test", args.segments, False, args.size)
    mcfg = model_config(over, len(classes), args.segments, args.size)
    tcfg = TrainConfig(epochs=args.epochs, batch_size=8, lr=2e-3, seed=seed)
    t0 = time.perf_counter()
    # metrics.csv's per-epoch held-out columns watch 2 videos (CPU time); the result
    # below is evaluated on every held-out video after training
    watch = copy.copy(val_ds)
    watch.items = val_ds.items[:2]
    model, _ = train((train_ds, watch), classes, run, mcfg, tcfg,
                     resume=(run / "checkpoint.pt").is_file(), echo=lambda m: None)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        res = evaluate(model.eval(), val_ds, classes)
        energy, how = energy_per_video(model, val_ds, args.energy_videos)
    return {"variant": name, "seed": seed, "top1": res["top1"], "energy_j": energy,
            "energy_counted": how, "train_seconds": seconds, "videos": res["videos"]}


def plot(summary: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s["variant"] for s in summary]
    x = np.arange(len(names))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    ours = [100 * s["top1_mean"] for s in summary]
    a.bar(x - 0.2, [s["paper_top1"] for s in summary], 0.4, color="#bbb",
          label="paper, UCF-101 (poster STM table)")
    a.bar(x + 0.2, ours, 0.4, yerr=[100 * s["top1_std"] for s in summary], capsize=3,
          color="C0", label="ours, tiny, synthetic (mean ± std over seeds)")
    for i, s in enumerate(summary):
        a.scatter([i + 0.2] * len(s["top1"]), [100 * v for v in s["top1"]], s=10, c="k",
                  zorder=3)
    a.axhline(100 / HARD["classes"], color="grey", ls="--", lw=0.8)
    a.text(len(names) - 0.5, 100 / HARD["classes"] + 1, "chance", fontsize=7, ha="right")
    a.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    a.set(ylabel="held-out top-1 [%]", ylim=(0, 125), title="top-1")
    a.legend(fontsize=7, loc="upper right")
    b.bar(x, [1e6 * s["energy_j_mean"] for s in summary],
          color=["C0" if "profiler" in s["energy_counted"] else "C1" for s in summary])
    b.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    b.set(ylabel="energy per video [µJ], 45 nm", title="energy per video (blue: profiled "
          "spikes; orange: all-dense MACs)")
    b.title.set_fontsize(9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def title(st: dict) -> str:
    h = st["synth"]
    return (f"STM ablations, tiny model, synthetic set ({h['classes']} classes, speed "
            f"{h['speed']}, {h['distractors']} distractors, noise {h['noise']}, "
            f"{h['frames']} frames; {st['epochs']} epochs, {st['seeds']} seed(s))")


def write(out: Path, runs: list[dict], args, seconds: float) -> tuple[list[dict], dict]:
    """OUT/ablations.json and .png of the runs so far (rewritten after every run, so an
    interrupted benchmark keeps what it measured)."""
    summary = []
    for name, over, paper in VARIANTS:
        rs = [r for r in runs if r["variant"] == name]
        if not rs:
            continue
        top = [r["top1"] for r in rs]
        summary.append({"variant": name, "switches": over, "paper_top1": paper,
                        "top1": top, "top1_mean": float(np.mean(top)),
                        "top1_std": float(np.std(top)),
                        "energy_j_mean": float(np.mean([r["energy_j"] for r in rs])),
                        "energy_counted": rs[0]["energy_counted"]})
    setting = {"synth": HARD, "per_class": args.per_class, "epochs": args.epochs,
               "seeds": args.seeds, "segments": args.segments, "crop": args.size,
               "variant": "tiny", "energy_preset": "45nm-fp32",
               "energy_videos": args.energy_videos}
    doc = {"setting": setting, "paper_source": PAPER_SOURCE, "summary": summary, "runs": runs,
           "complete": len(runs) == len(VARIANTS) * args.seeds, "wall_seconds": seconds}
    (out / "ablations.json").write_text(json.dumps(doc, indent=2))
    plot(summary, out / "ablations.png", title(setting))
    return summary, doc


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="runs/ablations")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=1, help="training seeds per variant")
    ap.add_argument("--per-class", type=int, default=8, help="videos per class (1/4 held out)")
    ap.add_argument("--segments", type=int, default=2)
    ap.add_argument("--size", type=int, default=32, help="crop side, px")
    ap.add_argument("--energy-videos", type=int, default=4,
                    help="held-out videos the profiler runs")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (1 where other jobs share the cores)")
    ap.add_argument("--long", action="store_true",
                    help="30 epochs, 16 videos per class, 3 seeds")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw OUT/ablations.png from OUT/ablations.json")
    args = ap.parse_args()
    if args.replot:
        doc = json.loads((Path(args.out) / "ablations.json").read_text())
        st = doc["setting"]
        plot(doc["summary"], Path(args.out) / "ablations.png", title(st))
        return
    if args.long:
        args.epochs, args.per_class, args.seeds = 30, 16, 3
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cache = make_set(out, args.per_class, seed=0)
    runs = []
    for name, over, _ in VARIANTS:
        for seed in range(args.seeds):
            tag = name.split(" (")[0].replace(" ", "_").replace("/", "").replace(">", "")
            tag += "_fixed" if over.get("fixed") else ""
            r = run_variant(cache, out / f"{tag}_s{seed}", name, over, seed, args)
            runs.append(r)
            print(f"{name:<24} seed {seed}: top-1 {r['top1']:.3f}, energy "
                  f"{r['energy_j'] * 1e6:.2f} µJ/video, {r['train_seconds']:.0f}s", flush=True)
            summary, doc = write(out, runs, args, time.perf_counter() - t0)
    print(f"{'variant':<24} {'paper top-1':>11} {'ours top-1':>11} {'µJ/video':>9}")
    for s in summary:
        print(f"{s['variant']:<24} {s['paper_top1']:>10.2f}% {100 * s['top1_mean']:>10.1f}% "
              f"{s['energy_j_mean'] * 1e6:>9.2f}")
    print(f"wrote {out / 'ablations.json'} and {out / 'ablations.png'} "
          f"({doc['wall_seconds']:.0f}s)")


if __name__ == "__main__":
    main()
