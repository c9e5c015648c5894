"""Issue 6's measurement: train the tiny hybrid model on a synthetic action set (8
classes in 4 appearance pairs that differ only by motion) with all modalities and with
the I-frame alone, on this machine's CPU; report held-out top-1, the accuracy within
appearance pairs (chance 0.5: only motion tells a pair apart), and wall times.

    python benchmarks/train_synth.py [-o OUT] [--epochs N]

Writes OUT/results.json and OUT/ablation.png. Uses the demo's defaults (hybrid/demo.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np


def within_pair(conf: np.ndarray) -> float:
    """Accuracy among held-out videos whose prediction lands in their own appearance pair
    (classes 2k and 2k+1): how well motion alone separates the pair."""
    right = wrong = 0
    for k in range(0, conf.shape[0] - 1, 2):
        right += conf[k, k] + conf[k + 1, k + 1]
        wrong += conf[k, k + 1] + conf[k + 1, k]
    return float(right / max(right + wrong, 1))


def main() -> None:
    import torch

    from hybrid.demo import DemoConfig, make_data, train_eval

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="runs/train_synth")
    ap.add_argument("--epochs", type=int, default=DemoConfig.epochs)
    args = ap.parse_args()
    out = Path(args.out)
    torch.set_num_threads(2)
    base = dataclasses.replace(DemoConfig(), epochs=args.epochs)
    _, cache = make_data(out, base, print)
    results = {}
    for name, mods in [("I+MV+R", ("i", "mv", "r")), ("I only", ("i",))]:
        cfg = dataclasses.replace(base, modalities=mods)
        t0 = time.perf_counter()
        res = train_eval(cache, out / name.replace("+", "_").replace(" ", "_"), cfg, print)
        conf = np.asarray(res["confusion"])
        results[name] = {"top1": res["top1"], "top5": res["top5"],
                         "within_pair": within_pair(conf), "per_class": res["per_class"],
                         "train_seconds": res["train_seconds"],
                         "wall_seconds": time.perf_counter() - t0, "epochs": cfg.epochs}
        print(f"{name}: top-1 {res['top1']:.3f}, within-pair {results[name]['within_pair']:.3f}"
              f", training {res['train_seconds']:.0f}s")
    results["config"] = dataclasses.asdict(base)
    (out / "results.json").write_text(json.dumps(results, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in results if n != "config"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = np.arange(len(names))
    ax.bar(x - 0.2, [results[n]["top1"] for n in names], 0.4, label="top-1 (chance 0.125)")
    ax.bar(x + 0.2, [results[n]["within_pair"] for n in names], 0.4,
           label="within appearance pair (chance 0.5)")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, names)
    ax.set(ylim=(0, 1.05), ylabel="held-out accuracy", title="tiny hybrid model, synthetic set")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "ablation.png", dpi=110)
    print(json.dumps({n: {k: results[n][k] for k in ("top1", "within_pair", "train_seconds")}
                      for n in names}, indent=2))


if __name__ == "__main__":
    main()
