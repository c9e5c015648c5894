"""Label efficiency of IMRNet-style pretraining: pretrain the `tiny` hybrid model on PMSP
+ CTP without labels (`hybrid pretrain`), then fine-tune it with only a few labels per
class (`hybrid train --init`), against the same model trained from scratch on the same
labels; held-out top-1 over several seeds, and the pretext accuracies on held-out videos.

    python benchmarks/label_efficiency.py [-o OUT] [--labels-per-class K] [--seeds N] [--long]

Pretraining sees every training video of the set, labels unused; each seed draws its K
labelled videos per class from them and seeds the fine-tuning (the classifier of both
arms starts identical: `hybrid.pretraining.pretrain.finetune_init`). The set is the ablation
benchmark's harder synthetic set (benchmarks/ablations.py, HARD). Writes
OUT/label_efficiency.json and OUT/label_efficiency.png. The default runs in minutes on 2
CPU cores; `--long` pretrains and fine-tunes longer, on more videos and seeds.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ablations import HARD, make_set  # noqa: E402  (the same synthetic set)

# IMRNet (Yu et al., ICLR 2021), poster (../shared/paper/imrnet-poster.txt), self-supervised
# table, IMRNet 3D-ResNet18 rows, UCF-101 top-1 [%]: scratch vs pretrained (Kinetics-400,
# all UCF-101 labels for fine-tuning; ours: a few labels per class).
PAPER_SOURCE = ("Yu et al., ICLR 2021 (IMRNet), poster (imrnet-poster.txt), self-supervised "
                "table, IMRNet 3D-ResNet18, UCF-101 top-1")
PAPER = {"scratch": 74.1, "PMSP": 76.0, "CTP": 76.7, "CTP (binary)": 74.6, "PMSP+CTP": 76.8}


def labelled_subset(ds, k: int, seed: int):
    """A copy of dataset ``ds`` keeping ``k`` videos per class, drawn with ``seed``."""
    by: dict[int, list] = {}
    for item in ds.items:
        by.setdefault(item[1], []).append(item)
    rng = random.Random(seed)
    sub = copy.copy(ds)
    sub.items = [it for c in sorted(by) for it in rng.sample(by[c], min(k, len(by[c])))]
    return sub


def majority_baseline(dataset, pcfg, batch_size: int = 8) -> dict[str, float]:
    """Per pretext metric, the accuracy of always answering the most frequent label of
    ``dataset``'s clips as :func:`hybrid.pretraining.pretrain.evaluate` scores them: PMSP's
    labels of the clips as they are; CTP is balanced there (every clip under every type), so a
    constant answer scores its chance level. The bar a model must clear beyond uniform
    chance (moving objects sit near the frame's centre)."""
    import torch
    from torch.utils.data import DataLoader

    from deploy.artifact.inputs import decode
    from hybrid.pretraining.pretrain import EVAL_SEED, make_batch
    from hybrid.pretraining.tasks import IGNORE

    gen = torch.Generator().manual_seed(EVAL_SEED)
    labels: dict[str, list] = {}
    for b in DataLoader(dataset, batch_size, shuffle=False):
        for k, y in make_batch(decode(b), pcfg, gen, ctp_kind=0 if pcfg.ctp else None)[1].items():
            labels.setdefault(k, []).extend(v for v in y.flatten().tolist() if v != IGNORE)
    out = {k: max(v.count(c) for c in set(v)) / len(v) for k, v in labels.items()}
    if pcfg.ctp:
        out[pcfg.ctp.replace("-", "_")] = pcfg.chance()[pcfg.ctp.replace("-", "_")]
    return out


def main() -> None:
    import torch

    from hybrid.data.dataset import open_split
    from hybrid.model import HybridConfig
    from hybrid.pretraining.pretrain import PretrainConfig, finetune_init, pretrain
    from hybrid.training import checkpoint
    from hybrid.training.evaluate import evaluate
    from hybrid.training.train import TrainConfig, train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="runs/label_efficiency")
    ap.add_argument("--labels-per-class", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=6, help="fine-tuning / scratch epochs")
    ap.add_argument("--per-class", type=int, default=8, help="videos per class (1/4 held out)")
    ap.add_argument("--tasks", default="pmsp,ctp")
    ap.add_argument("--segments", type=int, default=2)
    ap.add_argument("--size", type=int, default=32, help="crop side, px")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (1 where other jobs share the cores)")
    ap.add_argument("--long", action="store_true",
                    help="30 pretraining and 30 fine-tuning epochs, 16 videos per class, 5 seeds")
    args = ap.parse_args()
    if args.long:
        args.pretrain_epochs, args.epochs, args.per_class, args.seeds = 30, 30, 16, 5
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cache = make_set(out, args.per_class, seed=0)
    train_ds, classes = open_split(cache, "train", args.segments, True, args.size, seed=0)
    val_ds, _ = open_split(cache, "test", args.segments, False, args.size)
    K = len(classes)

    # 1. pretraining, no labels
    pcfg = PretrainConfig(tasks=tuple(args.tasks.split(",")),
                          levels=((2, args.segments), (4, 1)))  # 2x2 per segment, 4x4 whole
    mcfg = HybridConfig(variant="tiny", num_classes=1, segments=args.segments,
                        size=(args.size, args.size))
    pre_run = out / "pretrain"
    _, last = pretrain((train_ds, val_ds), pre_run, mcfg, pcfg,
                       TrainConfig(epochs=args.pretrain_epochs, batch_size=8, lr=2e-3, seed=0),
                       resume=(pre_run / "checkpoint.pt").is_file(), echo=print)
    ck = checkpoint.load(pre_run / "checkpoint.pt")
    pretext = {k: ck["metrics"][f"val_{k}"] for k in pcfg.names()}
    majority = majority_baseline(val_ds, pcfg)
    print("held-out pretext accuracy: " + ", ".join(
        f"{k} {v:.3f} (chance {pcfg.chance()[k]:.3f}, majority {majority[k]:.3f})"
        for k, v in pretext.items()), flush=True)

    # 2. few labels: scratch vs fine-tuned from the pretrained backbone
    runs = []
    for seed in range(args.seeds):
        lab = labelled_subset(train_ds, args.labels_per_class, seed)
        for arm in ("scratch", "pretrained"):
            cfg = HybridConfig(variant="tiny", num_classes=K, segments=args.segments,
                               size=(args.size, args.size))
            init = None
            if arm == "pretrained":
                cfg, init = finetune_init(ck, K, seed)
            run = out / f"{arm}_s{seed}"
            tcfg = TrainConfig(epochs=args.epochs, batch_size=8, lr=2e-3, seed=seed)
            resume = (run / "checkpoint.pt").is_file()
            watch = copy.copy(val_ds)  # per-epoch held-out columns: 2 videos (CPU time)
            watch.items = val_ds.items[:2]
            model, _ = train((lab, watch), classes, run, cfg, tcfg, resume=resume,
                             echo=lambda m: None, init=None if resume else init)
            with torch.no_grad():
                top1 = evaluate(model.eval(), val_ds, classes)["top1"]
            runs.append({"arm": arm, "seed": seed, "top1": top1, "labelled": len(lab.items)})
            print(f"seed {seed} {arm:<10}: held-out top-1 {top1:.3f} "
                  f"({len(lab.items)} labelled videos)", flush=True)
    table = {arm: {"top1": [r["top1"] for r in runs if r["arm"] == arm]}
             for arm in ("scratch", "pretrained")}
    for v in table.values():
        v["mean"], v["std"] = float(np.mean(v["top1"])), float(np.std(v["top1"]))
    doc = {"setting": {"synth": HARD, "per_class": args.per_class,
                       "labels_per_class": args.labels_per_class, "seeds": args.seeds,
                       "pretrain_epochs": args.pretrain_epochs, "epochs": args.epochs,
                       "tasks": list(pcfg.tasks), "levels": [list(lv) for lv in pcfg.levels],
                       "segments": args.segments, "crop": args.size, "variant": "tiny",
                       "unlabelled_videos": len(train_ds), "held_out_videos": len(val_ds)},
           "pretext_held_out": pretext, "pretext_chance": pcfg.chance(),
           "pretext_majority": majority,
           "table": table, "runs": runs, "paper_source": PAPER_SOURCE, "paper": PAPER,
           "wall_seconds": time.perf_counter() - t0}
    (out / "label_efficiency.json").write_text(json.dumps(doc, indent=2))
    plot(doc, out / "label_efficiency.png")
    print(f"{'arm':<11} {'top-1 mean':>10} {'std':>6}  per seed")
    for arm, v in table.items():
        print(f"{arm:<11} {v['mean']:>10.3f} {v['std']:>6.3f}  "
              + " ".join(f"{t:.3f}" for t in v["top1"]))
    print(f"wrote {out / 'label_efficiency.json'} and {out / 'label_efficiency.png'} "
          f"({doc['wall_seconds']:.0f}s)")


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(doc["pretext_held_out"])
    x = np.arange(len(names))
    a.bar(x - 0.27, [100 * doc["pretext_held_out"][n] for n in names], 0.27, label="held-out")
    a.bar(x, [100 * doc["pretext_majority"][n] for n in names], 0.27, color="#888",
          label="most frequent label")
    a.bar(x + 0.27, [100 * doc["pretext_chance"][n] for n in names], 0.27, color="#ccc",
          label="uniform chance")
    a.set_xticks(x, names, fontsize=8)
    a.set(ylabel="accuracy [%]", ylim=(0, 100), title="pretext tasks, held-out videos")
    a.legend(fontsize=8)
    arms = list(doc["table"])
    t = doc["table"]
    b.bar(range(len(arms)), [100 * t[m]["mean"] for m in arms],
          yerr=[100 * t[m]["std"] for m in arms], capsize=4, color=["#999", "C0"])
    for i, m in enumerate(arms):
        b.scatter([i] * len(t[m]["top1"]), [100 * v for v in t[m]["top1"]], c="k", s=12,
                  zorder=3)
    b.axhline(100 / doc["setting"]["synth"]["classes"], color="grey", ls="--", lw=0.8)
    s = doc["setting"]
    b.set_xticks(range(len(arms)), ["from scratch", f"from {'+'.join(s['tasks'])}"])
    b.set(ylabel="held-out top-1 [%]", ylim=(0, 100),
          title=f"{s['labels_per_class']} labels per class, {s['seeds']} seeds (dashed: chance)")
    b.title.set_fontsize(9)
    fig.suptitle(f"tiny hybrid model, synthetic set ({s['unlabelled_videos']} unlabelled, "
                 f"{s['held_out_videos']} held-out videos)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
