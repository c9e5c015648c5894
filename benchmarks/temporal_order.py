"""Where the STM pays: the temporal modules over seeds on the temporal-order set, where
only the order of motion inside a GOP tells a class pair apart, and on the ablation
benchmark's hard set, where it need not; mean and 95 % interval per variant.

    python benchmarks/temporal_order.py [-o OUT] [--set order|hard] [--seeds 0-4]
        [--epochs N] [--per-class N] [--variants stm,none,...] [--threads 1]

Seed ``s`` is both the dataset seed (``hybrid synth ... --seed 100 + s``: a new set of
videos) and the training seed, so the interval covers both. Sets (``hybrid synth``):
- ``order``: ``--motions order --classes 6 --size 96x64 --frames 24`` (three pairs:
  up/down-and-back, move-then-rest/rest-then-move, speed up/slow down; each GOP of a pair
  ends at the same displacement, so ``--temporal none``, which sees the GOP's last
  accumulated P-frame, is at chance within a pair: about 50 % top-1);
- ``hard``: the ablation benchmark's set (``benchmarks/ablations.py``, ``HARD``).
Defaults per set (``DEFAULTS``, the settings of the documented runs): ``order`` 60 epochs
and 24 videos per class (18 training, 6 held out: one held-out video is 2.8 points; with
12, 9 training videos a class left the model fitting the training videos, not the order
the bridge carries: ``benchmarks/order_signal.py``), ``hard`` 36 epochs and 12.
Variants are ``hybrid train``'s switches (``VARIANTS`` of ablations.py) and ``stm_norm``,
the STM with its bridge output standardised (``DenseConfig.stm_norm``). Every run writes
``OUT/<variant>_s<seed>/result.json``; ``OUT/<set>_seeds.json`` and ``.png`` gather all
the results present, so runs split over processes (``--variants``) land in one summary
(``--replot`` only regathers). Held-out top-1: every held-out video, one centre view.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablations import HARD, VARIANTS  # noqa: E402

ORDER = {"classes": 6, "size": (96, 64), "frames": 24, "speed": 1.0, "distractors": 1,
         "noise": 2.0, "jitter": 0.2, "motions": "order"}
SETS = {"order": ORDER, "hard": {**HARD, "motions": "motion"}}
DEFAULTS = {"order": {"epochs": 60, "per_class": 24}, "hard": {"epochs": 36, "per_class": 12}}
# the ablation's variants, and the STM with its bridge output normalised (the one lever
# that moved top-1 in benchmarks/stm_diagnostics.py; DenseConfig.stm_norm)
VARIANTS = [*VARIANTS, ("STM + bridge norm", {"temporal": "stm", "dense": {"stm_norm": True}},
                        None)]
TAGS = {"STM": "stm", "W/o STM": "none", "Common STM": "common",
        "STM (fixed v_th, leak)": "fixed_lif", "STM -> ConvLSTM": "lstm",
        "STM + bridge norm": "stm_norm"}


def ci95(values: list[float]) -> tuple[float, float]:
    """Student-t 95 % interval of the mean of ``values`` (n >= 2; n = 1: the value)."""
    from scipy import stats

    v = np.asarray(values, float)
    if len(v) < 2:
        return float(v.mean()), float(v.mean())
    h = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() - h), float(v.mean() + h)


def make_set(out: Path, which: str, per_class: int, seed: int) -> Path:
    """The set of dataset seed ``100 + seed``, extracted into a cache (once)."""
    from hybrid.data.cache import PrepareConfig, prepare
    from hybrid.video.synth import SynthConfig, make_dataset

    s = SETS[which]
    data, cache = out / f"data_s{seed}", out / f"cache_s{seed}.h5"
    if not (data / "testlist01.txt").is_file():
        make_dataset(data, s["classes"], per_class, 100 + seed,
                     SynthConfig(size=s["size"], frames=s["frames"], speed=s["speed"],
                                 distractors=s["distractors"], noise=s["noise"],
                                 jitter=s["jitter"], motions=s["motions"]))
    r = prepare(data, cache, PrepareConfig(size=s["size"]), workers=1)
    assert not r["failed"], f"synthetic videos failed to extract: {r['failed'][:2]}"
    return cache


def model_config(over: dict, classes: int, segments: int, size: int, stm: dict,
                 dense: dict | None = None):
    from hybrid.model import STM_DEFAULTS, HybridConfig

    neuron = {"learn_neuron": False} if over.get("fixed") else {}
    return HybridConfig(variant="tiny", num_classes=classes, segments=segments,
                        size=(size, size), temporal=over["temporal"],
                        stm={**STM_DEFAULTS, **stm, **neuron}, dense=dict(dense or {}))


def run_one(cache: Path, run: Path, name: str, over: dict, seed: int, args) -> dict:
    import torch

    from hybrid.data.dataset import open_split
    from hybrid.training.evaluate import evaluate
    from hybrid.training.train import TrainConfig, train

    train_ds, classes = open_split(cache, "train", args.segments, True, args.size, seed=seed)
    val_ds, _ = open_split(cache, "test", args.segments, False, args.size)
    mcfg = model_config(over, len(classes), args.segments, args.size, json.loads(args.stm),
                        {**json.loads(args.dense), **over.get("dense", {})})
    tcfg = TrainConfig(epochs=args.epochs, batch_size=8, lr=args.lr, seed=seed,
                       stm_lr=args.stm_lr)
    watch = copy.copy(val_ds)  # metrics.csv's per-epoch held-out columns: 2 videos
    watch.items = val_ds.items[:2]
    t0, c0 = time.perf_counter(), time.process_time()
    model, last = train((train_ds, watch), classes, run, mcfg, tcfg,
                        resume=(run / "checkpoint.pt").is_file(), echo=lambda m: None)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    with torch.no_grad():
        res = evaluate(model.eval(), val_ds, classes)
    return {"variant": name, "seed": seed, "dataset_seed": 100 + seed, "top1": res["top1"],
            "videos": res["videos"], "per_class": res["per_class"],
            "train_loss": last.get("train_loss"), "train_acc": last.get("train_acc"),
            "train_wall_s": wall, "train_cpu_s": cpu}


def gather(out: Path) -> tuple[dict, list[dict]]:
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*_s*/result.json"))]
    setting = json.loads((out / "setting.json").read_text())
    return setting, runs


def summarise(runs: list[dict]) -> list[dict]:
    summary = []
    for name, over, _ in VARIANTS:
        rs = sorted((r for r in runs if r["variant"] == name), key=lambda r: r["seed"])
        if not rs:
            continue
        top = [r["top1"] for r in rs]
        lo, hi = ci95(top)
        summary.append({"variant": name, "switches": over, "seeds": [r["seed"] for r in rs],
                        "top1": top, "top1_mean": float(np.mean(top)), "ci95": [lo, hi],
                        "train_loss_mean": float(np.mean([r["train_loss"] for r in rs])),
                        "train_acc_mean": float(np.mean([r["train_acc"] for r in rs])),
                        "train_wall_s_mean": float(np.mean([r["train_wall_s"] for r in rs]))})
    # paired by seed against no STM (a seed is one dataset and one training seed for
    # every variant, so the per-seed difference removes the set-to-set spread)
    base = {r["seed"]: r["top1"] for r in runs if r["variant"] == "W/o STM"}
    for s in summary:
        both = [k for k in s["seeds"] if k in base]
        if s["variant"] != "W/o STM" and both:
            d = [s["top1"][s["seeds"].index(k)] - base[k] for k in both]
            s["vs_none"] = {"seeds": both, "diff": d, "diff_mean": float(np.mean(d)),
                            "ci95": list(ci95(d))}
    return summary


def plot(summary: list[dict], setting: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    x = np.arange(len(summary))
    means = [100 * s["top1_mean"] for s in summary]
    err = np.array([[100 * (s["top1_mean"] - s["ci95"][0]), 100 * (s["ci95"][1] - s["top1_mean"])]
                    for s in summary]).T
    ax.bar(x, means, 0.6, yerr=err, capsize=4, color="C0", alpha=0.8)
    for i, s in enumerate(summary):
        ax.scatter([i] * len(s["top1"]), [100 * v for v in s["top1"]], s=12, c="k", zorder=3)
        ax.text(i, 2, f"{means[i]:.1f}", ha="center", fontsize=8, color="w")
        if "vs_none" in s:
            v = s["vs_none"]
            ax.text(i, 119, f"{100 * v['diff_mean']:+.1f} vs none\n[{100 * v['ci95'][0]:+.0f}, "
                    f"{100 * v['ci95'][1]:+.0f}] paired", ha="center", va="top", fontsize=6.5)
    st = setting["synth"]
    ax.axhline(100 / st["classes"], color="grey", ls="--", lw=0.8)
    if st.get("motions") == "order":  # the I-frame tells the pair, only order the class
        ax.axhline(50, color="C3", ls=":", lw=1)
        ax.text(-0.45, 51, "pair right, order guessed", color="C3", fontsize=7)
    ax.set_xticks(x, [s["variant"] for s in summary], rotation=15, ha="right", fontsize=8)
    ax.set(ylabel="held-out top-1 [%]\nbar: mean, whisker: 95 % interval (t), dot: seed",
           ylim=(0, 120), yticks=range(0, 101, 20))
    ax.set_title(f"{setting['set']} set ({st['classes']} classes, {st.get('motions')}), tiny, "
                 f"{setting['epochs']} epochs, {setting['per_class']} videos/class; "
                 "dashed: chance", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: Path) -> dict:
    setting, runs = gather(out)
    summary = summarise(runs)
    doc = {"setting": setting, "summary": summary, "runs": runs,
           "source": "measured: benchmarks/temporal_order.py"}
    name = f"{setting['set']}_seeds"
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2))
    plot(summary, setting, out / f"{name}.png")
    return doc


def fill_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the epochs and videos per class not given taken from the set's
    ``DEFAULTS``."""
    for key, value in DEFAULTS[args.set].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="runs/temporal_order")
    ap.add_argument("--set", choices=sorted(SETS), default="order")
    ap.add_argument("--epochs", type=int, default=None, help="default: the set's DEFAULTS")
    ap.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,2")
    ap.add_argument("--per-class", type=int, default=None,
                    help="videos per class (1/4 held out); default: the set's DEFAULTS")
    ap.add_argument("--segments", type=int, default=2)
    ap.add_argument("--size", type=int, default=32, help="crop side, px")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--stm-lr", type=float, default=1.0, help="factor on lr for the STMs")
    ap.add_argument("--dense", default="{}",
                    help='DenseConfig overrides, JSON (all variants), e.g. \'{"stm_norm": true}\'')
    ap.add_argument("--stm", default="{}", help="STMConfig overrides, JSON (all variants)")
    ap.add_argument("--variants", default="stm,none,common,fixed_lif,lstm",
                    help=f"comma-separated of {','.join(TAGS.values())}")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--replot", action="store_true", help="only regather OUT's results")
    args = ap.parse_args()
    fill_defaults(args)
    out = Path(args.out)
    if args.replot:
        write(out)
        return
    torch.set_num_threads(args.threads)
    a, _, b = args.seeds.partition("-")
    seeds = list(range(int(a), int(b) + 1)) if b else [int(s) for s in args.seeds.split(",")]
    wanted = args.variants.split(",")
    out.mkdir(parents=True, exist_ok=True)
    setting = {"set": args.set, "synth": SETS[args.set], "per_class": args.per_class,
               "epochs": args.epochs, "segments": args.segments, "crop": args.size,
               "lr": args.lr, "stm_lr": args.stm_lr, "batch_size": 8,
               "stm": json.loads(args.stm), "dense": json.loads(args.dense),
               "variant": "tiny",
               "dataset_seed": "100 + seed"}
    (out / "setting.json").write_text(json.dumps(setting, indent=2))
    for seed in seeds:
        cache = make_set(out, args.set, args.per_class, seed)
        for name, over, _ in VARIANTS:
            tag = TAGS[name]
            if tag not in wanted:
                continue
            run = out / f"{tag}_s{seed}"
            if (run / "result.json").is_file():
                continue
            r = run_one(cache, run, name, over, seed, args)
            (run / "result.json").write_text(json.dumps(r, indent=2))
            print(f"{name:<24} seed {seed}: top-1 {r['top1']:.3f}, train loss "
                  f"{r['train_loss']:.3f}, {r['train_wall_s']:.0f}s wall", flush=True)
            write(out)
    doc = write(out)
    for s in doc["summary"]:
        vs = s.get("vs_none")
        print(f"{s['variant']:<24} top-1 {100 * s['top1_mean']:5.1f} % "
              f"[{100 * s['ci95'][0]:5.1f}, {100 * s['ci95'][1]:5.1f}] over seeds {s['seeds']}"
              + (f"; minus no STM, paired: {100 * vs['diff_mean']:+.1f} points "
                 f"[{100 * vs['ci95'][0]:+.1f}, {100 * vs['ci95'][1]:+.1f}]" if vs else ""))


if __name__ == "__main__":
    main()
