"""Where in a GOP the temporal-order set's pairs differ: per P-frame (timestep) of a GOP,
how well one motion feature of the accumulated MVs tells the two classes of each pair
apart (d' = difference of the class means over the pooled standard deviation).

    python benchmarks/order_signal.py [-o OUT] [--seed 0] [--per-class 24]
        [--probe CHECKPOINT|init ...]

The set is the order benchmark's (``benchmarks/temporal_order.py --set order``, dataset
seed ``100 + seed``), every video of both splits, both GOPs, the centre crop that
evaluation uses (56 of the 64 px rows, resized to ``--crop`` 32 px). Feature per
P-frame: over the crop's moving pixels (accumulated |MV| >= 1 px), the mean signed
vertical MV (out-and-back, speed pairs: vertical motion) or the mean |horizontal MV|
(move/rest: horizontal motion, random left/right sense).
The last P-frame is all that ``--temporal none`` sees; the STM reads its last layer's
membrane potential after that P-frame, so what it must carry to the read-out is the
difference at the P-frames where the pair differs.

``--probe``: whether the bridge carries it. Per pair, a logistic regression (standardised
features, C 0.1) fitted on the training split's GOPs and scored on the held-out GOPs,
from the STMs' read-out v (MV and residual STM; per channel the mean, mean |v| and max
over positions) computed from all 11 P-frames, or from the last 6, 3 or 1 only (state
from zero there: what a memory of that many steps could carry), and from the input MVs
themselves (the same pooling) at P-frame 1, at the last P-frame, and at all 11. A
checkpoint of ``hybrid train`` on this set (``temporal_order.py`` writes one per run), or
``init``: the STMs of a fresh ``tiny`` model (torch seed 0); for a checkpoint also the
model's own top-1 per class on the training and the held-out videos (centre view). Writes
``OUT/order_signal.json`` and ``.png``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from temporal_order import make_set  # noqa: E402

# (class a, class b, MV component: 1 signed vertical, 0 horizontal magnitude)
PAIRS = [("up_and_back", "down_and_back", 1), ("move_then_rest", "rest_then_move", 0),
         ("speed_up", "slow_down", 1)]
MV_BOUND = 20.0  # px at the ends of the code range (hybrid.data.transforms.Normalization)


def features(cache: Path, crop: int) -> dict[str, np.ndarray]:
    """Class -> (GOPs, 2, T): per P-frame, the mean vertical and |horizontal| MV (px)
    over the crop's moving pixels."""
    import torch

    from deploy.artifact.inputs import decode
    from hybrid.data.dataset import open_split

    out: dict[str, list] = {}
    for split in ("train", "test"):
        ds, classes = open_split(cache, split, 2, False, crop)
        for i in range(len(ds)):
            sample = ds[i]
            mv = decode({k: v[None] for k, v in sample.items()})["mv"][0] * 2 * MV_BOUND
            moving = (mv.norm(dim=2) >= 1.0).float()  # (S, T, H, W)
            n = moving.sum(dim=(2, 3)).clamp(min=1)
            fy = (mv[:, :, 1] * moving).sum(dim=(2, 3)) / n
            fx = (mv[:, :, 0].abs() * moving).sum(dim=(2, 3)) / n
            out.setdefault(classes[int(sample["label"])], []).append(
                torch.stack([fx, fy], 1).numpy())  # (S, 2, T)
    return {c: np.concatenate(v) for c, v in out.items()}


def probe(cache: Path, crop: int, checkpoint: str) -> dict:
    """Pair -> {features: held-out GOP accuracy of a linear probe} (see the docstring)."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deploy.artifact.bridge import to_stm
    from deploy.artifact.inputs import decode
    from hybrid.data.dataset import open_split
    from hybrid.model import STM_DEFAULTS, HybridConfig, HybridModel
    from hybrid.training.evaluate import load_model

    if checkpoint == "init":
        torch.manual_seed(0)
        model = HybridModel(HybridConfig(variant="tiny", num_classes=6, segments=2,
                                         size=(crop, crop), stm=dict(STM_DEFAULTS)))
    else:
        model = load_model(checkpoint)[0]
    model.eval()

    def pool(v):  # (N, C, H, W) -> (N, 3C)
        return torch.cat([v.mean((2, 3)), v.abs().mean((2, 3)), v.amax((2, 3))], 1).numpy()

    def split_features(split):
        ds, classes = open_split(cache, split, 2, False, crop)
        samples = [ds[i] for i in range(len(ds))]
        b = decode({k: torch.stack([x[k] for x in samples]) for k in samples[0]})
        y = np.repeat([classes[int(x["label"])] for x in samples], 2)  # a GOP each
        mv, res = to_stm(b["mv"]), to_stm(b["residual"])
        feats = {}
        with torch.no_grad():
            for n in (11, 6, 3, 1):
                feats[f"v, last {n}"] = np.concatenate(
                    [pool(model.stm_mv.stm(mv[..., -n:]).v),
                     pool(model.stm_res.stm(res[..., -n:]).v)], 1)
        feats["MV, P-frame 1"] = pool(mv[..., 0])
        feats["MV, last P-frame"] = pool(mv[..., -1])
        feats["MV, all 11"] = np.concatenate([pool(mv[..., t]) for t in range(11)], 1)
        return feats, y

    (ftr, ytr), (fte, yte) = split_features("train"), split_features("test")
    out = {}
    if checkpoint != "init":  # the trained model's own top-1 per class, centre view
        from hybrid.training.evaluate import evaluate

        for split in ("train", "test"):
            ds, classes = open_split(cache, split, 2, False, crop)
            with torch.no_grad():
                out[f"model, {split} videos"] = evaluate(model, ds, classes)["per_class"]
    for a, b, _ in PAIRS:
        mtr, mte = np.isin(ytr, [a, b]), np.isin(yte, [a, b])
        row = {}
        for k in ftr:
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
            clf.fit(ftr[k][mtr], ytr[mtr] == a)
            row[k] = float((clf.predict(fte[k][mte]) == (yte[mte] == a)).mean())
        out[f"{a} / {b}"] = {"held_out_gops": int(mte.sum()), "accuracy": row}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="runs/order_signal")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-class", type=int, default=24)
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--probe", nargs="*", default=[], metavar="CHECKPOINT",
                    help="checkpoints (or 'init') whose bridge output to probe")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = make_set(out, "order", args.per_class, args.seed)
    f = features(cache, args.crop)
    pairs = []
    for a, b, comp in PAIRS:
        xa, xb = f[a][:, comp], f[b][:, comp]  # (GOPs, T)
        sd = np.sqrt((xa.var(0, ddof=1) + xb.var(0, ddof=1)) / 2)
        pairs.append({"pair": f"{a} / {b}", "feature": ["|mv_x|", "mv_y"][comp],
                      "gops": [len(xa), len(xb)], "mean_a": xa.mean(0).tolist(),
                      "mean_b": xb.mean(0).tolist(), "sd": sd.tolist(),
                      "d_prime": (np.abs(xa.mean(0) - xb.mean(0)) / sd).tolist()})
    doc = {"set": "order", "seed": args.seed, "dataset_seed": 100 + args.seed,
           "per_class": args.per_class, "crop": args.crop, "pairs": pairs,
           "probes": {ck: probe(cache, args.crop, ck) for ck in args.probe},
           "source": "measured: benchmarks/order_signal.py"}
    (out / "order_signal.json").write_text(json.dumps(doc, indent=2))
    plot(doc, out / "order_signal.png")
    for p in pairs:
        print(f"{p['pair']:<34} d' per P-frame: "
              + " ".join(f"{v:.1f}" for v in p["d_prime"]))
    for ck, rows in doc["probes"].items():
        print(f"probe of {ck}, held-out GOP accuracy:")
        for pair, r in rows.items():
            if "accuracy" not in r:  # the model's own per-class top-1
                print(f"  {pair}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()))
                continue
            print(f"  {pair:<34}" + ", ".join(f"{k} {v:.2f}" for k, v in r["accuracy"].items()))


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.4))
    for i, p in enumerate(doc["pairs"]):
        t = np.arange(1, len(p["d_prime"]) + 1)
        ax.plot(t, p["d_prime"], "o-", ms=3, color=f"C{i}", label=p["pair"])
        bx.plot(t, p["mean_a"], "-", color=f"C{i}", label=f"{p['pair']} ({p['feature']})")
        bx.plot(t, p["mean_b"], "--", color=f"C{i}")
    ax.axvspan(10.5, 11.5, color="grey", alpha=0.2)
    ax.text(11, 0.2, "--temporal none", rotation=90, ha="center", fontsize=7)
    ax.set(xlabel="P-frame of the GOP (STM timestep)", ylabel="d' of the pair",
           title="how far apart a pair is, per P-frame")
    bx.set(xlabel="P-frame of the GOP", ylabel="MV on moving pixels [px]",
           title="class means (solid: first of pair)")
    ax.legend(fontsize=7)
    bx.legend(fontsize=6)
    for a in (ax, bx):
        a.title.set_fontsize(9)
    fig.suptitle(f"order set, dataset seed {doc['dataset_seed']}, {doc['per_class']} "
                 f"videos/class, evaluation's centre crop ({doc['crop']} px)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
