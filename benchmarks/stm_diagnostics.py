"""How the STM trains: per STM layer and epoch, the gradient norm reaching its synapses
and its neuron parameters (threshold, leak), its firing rate and the fractions of dead
and saturated neurons, and the scale of what the bridge carries against the I-frame's
tokens; then held-out top-1. One run per STM setting (the levers: surrogate width,
weight scale, threshold and leak initialisation, input scaling, ...).

    python benchmarks/stm_diagnostics.py -o OUT [--set hard|order] [--seed 0]
        [--epochs 12] [--stm '{"surrogate_width": 1.0}'] [--name NAME] [--threads 1]
    python benchmarks/stm_diagnostics.py -o OUT --plot   # the figure of every run in OUT

Measured with global module hooks on the real training (``hybrid.training.train.train``, the
same optimiser, schedule and clipping as ``hybrid train``): gradients are the ones
backpropagation delivers before clipping, per step, averaged over the epoch's steps
(L2 norm over the tensor); a neuron (channel x position of a layer) is dead when it
did not spike in any step of any training clip of the epoch, saturated when it spiked
in at least 90 % of them. The bridge scale is the RMS of the STM's output voltages and
of each modality's patch-embedding tokens (training clips). Writes
``OUT/<name>/diag.json``; ``--plot`` draws ``OUT/stm_diagnostics.png``.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from temporal_order import make_set, model_config  # noqa: E402

SATURATED = 0.9  # a neuron spiking in at least this fraction of steps


class Recorder:
    """Global forward hooks on the STM blocks, the bridge and the patch embeddings, and
    gradient hooks on the STM parameters; ``flush()`` returns one epoch's statistics."""

    def __init__(self):
        from ann.layers.patch_embed import PatchEmbed
        from hybrid.model import HybridModel
        from neuro.stm import Block

        self.types = (Block, PatchEmbed, HybridModel)
        self.names: dict[int, str] = {}  # id(block) -> "mv1", ...
        self.hooked: set[int] = set()
        self.branch_order: list[int] = []
        self.embed_i = 0
        self.reset()

    def reset(self):
        self.grads = defaultdict(list)  # "mv1.synapse" -> per-step norms
        self.spk = {}  # block name -> (spike sum per neuron, steps seen per neuron)
        self.rate = defaultdict(list)
        self.rms = defaultdict(list)

    def _grad_hook(self, key):
        def hook(g):
            self.grads[key].append(float(g.norm()))
        return hook

    def pre(self, module, args):
        from hybrid.model import HybridModel

        if isinstance(module, HybridModel):
            self.embed_i = 0

    def post(self, module, args, out):
        from ann.layers.patch_embed import PatchEmbed
        from neuro.stm import Block

        if not module.training:
            return
        if isinstance(module, Block):
            if id(module) not in self.names:
                k = len(self.names)
                self.names[id(module)] = f"{('mv', 'r')[k // 3 % 2]}{k % 3 + 1}"
            name = self.names[id(module)]
            if id(module) not in self.hooked:
                self.hooked.add(id(module))
                module.synapse.weight.register_hook(self._grad_hook(f"{name}.synapse"))
                for p in ("threshold_raw", "leak_raw"):
                    t = getattr(module.neuron, p)
                    if t.requires_grad:
                        t.register_hook(self._grad_hook(f"{name}.{p.split('_')[0]}"))
            s = out[0].detach()  # (B, C, H, W, T)
            per = s.sum(dim=(0, 4))  # (C, H, W) spikes per neuron
            steps = s.shape[0] * s.shape[4]
            tot, n = self.spk.get(name, (0, 0))
            self.spk[name] = (per + tot, n + steps)
            self.rate[name].append(float(s.mean()))
            if name.endswith("1"):
                self.rms[f"input.{name[:-1]}"].append(float(args[0].float().pow(2).mean().sqrt()))
        elif isinstance(module, PatchEmbed):
            mod = ("i", "mv", "r")[self.embed_i % 3]
            self.embed_i += 1
            self.rms[f"tokens.{mod}"].append(float(out.detach().pow(2).mean().sqrt()))
            self.rms[f"embed_in.{mod}"].append(float(args[0].detach().pow(2).mean().sqrt()))

    def flush(self) -> dict:
        layers = {}
        for name, (per, steps) in self.spk.items():
            r = per.flatten().float() / steps
            layers[name] = {"rate": float(np.mean(self.rate[name])),
                            "dead": float((r == 0).float().mean()),
                            "saturated": float((r >= SATURATED).float().mean())}
        grads = {k: float(np.mean(v)) for k, v in self.grads.items()}
        rms = {k: float(np.mean(v)) for k, v in self.rms.items() if v}
        self.reset()
        return {"layers": layers, "grad_norm": grads, "rms": rms}


def run(args) -> dict:
    import torch
    from torch.nn.modules import module as M

    from hybrid.data.dataset import open_split
    from hybrid.training.evaluate import evaluate
    from hybrid.training.train import TrainConfig, train

    out = Path(args.out)
    cache = make_set(out, args.set, args.per_class, args.seed)
    train_ds, classes = open_split(cache, "train", 2, True, 32, seed=args.seed)
    val_ds, _ = open_split(cache, "test", 2, False, 32)
    stm = json.loads(args.stm)
    mcfg = model_config({"temporal": args.temporal}, len(classes), 2, 32, stm,
                        {"stm_norm": True} if args.bridge_norm else {})
    tcfg = TrainConfig(epochs=args.epochs, batch_size=8, lr=2e-3, seed=args.seed,
                       stm_lr=args.stm_lr)
    rec = Recorder()
    h1 = M.register_module_forward_pre_hook(lambda m, a: rec.pre(m, a)
                                            if isinstance(m, rec.types) else None)
    h2 = M.register_module_forward_hook(lambda m, a, o: rec.post(m, a, o)
                                        if isinstance(m, rec.types) else None)
    epochs = []
    watch = copy.copy(val_ds)
    watch.items = val_ds.items[:2]
    run_dir = out / args.name
    t0 = time.perf_counter()
    try:
        model, last = train((train_ds, watch), classes, run_dir, mcfg, tcfg,
                            on_epoch_end=lambda e: epochs.append({"epoch": e, **rec.flush()}),
                            echo=lambda m: print(m, flush=True))
    finally:
        h1.remove()
        h2.remove()
    wall = time.perf_counter() - t0
    with torch.no_grad():
        res = evaluate(model.eval(), val_ds, classes)
    neuron = {}
    for i, blk in enumerate(getattr(model.stm_mv, "stm", None).blocks
                            if hasattr(model.stm_mv, "stm") else []):
        neuron[f"mv{i + 1}"] = {"threshold": float(blk.neuron.threshold.detach()),
                                "leak": float(blk.neuron.leak.detach())}
    doc = {"name": args.name, "set": args.set, "seed": args.seed, "stm": stm,
           "stm_lr": args.stm_lr, "bridge_norm": args.bridge_norm,
           "temporal": args.temporal, "epochs": epochs, "top1": res["top1"],
           "train_loss": last.get("train_loss"), "train_acc": last.get("train_acc"),
           "final_neuron_mv": neuron, "train_wall_s": wall,
           "source": "measured: benchmarks/stm_diagnostics.py"}
    (run_dir / "diag.json").write_text(json.dumps(doc, indent=2))
    print(f"{args.name}: top-1 {res['top1']:.3f}, train loss {doc['train_loss']:.3f}, "
          f"{wall:.0f}s")
    return doc


def plot(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = [json.loads(p.read_text()) for p in sorted(out.glob("*/diag.json"),
                                                        key=lambda p: p.stat().st_mtime)]
    (out / "stm_diagnostics.json").write_text(json.dumps(
        {"source": "measured: benchmarks/stm_diagnostics.py", "runs": every}, indent=1))
    docs = [d for d in every if d["temporal"] != "none"]
    rows = [("synapse grad norm", lambda e, L: e["grad_norm"].get(f"{L}.synapse")),
            ("threshold grad norm", lambda e, L: e["grad_norm"].get(f"{L}.threshold")),
            ("firing rate", lambda e, L: e["layers"].get(L, {}).get("rate")),
            ("dead fraction", lambda e, L: e["layers"].get(L, {}).get("dead")),
            ("saturated fraction", lambda e, L: e["layers"].get(L, {}).get("saturated"))]
    fig, axes = plt.subplots(len(rows) + 1, len(docs), figsize=(3.2 * len(docs), 12),
                             squeeze=False, sharex=True)
    for j, d in enumerate(docs):
        ep = [e["epoch"] for e in d["epochs"]]
        for i, (label, get) in enumerate(rows):
            ax = axes[i, j]
            for k, L in enumerate(("mv1", "mv2", "mv3", "r1", "r2", "r3")):
                ys = [get(e, L) for e in d["epochs"]]
                if any(y is not None for y in ys):
                    ax.plot(ep, [np.nan if y is None else y for y in ys], f"C{k % 3}",
                            ls="-" if L.startswith("mv") else "--", label=L, lw=1.2)
            if "grad" in label:
                ax.set_yscale("log")
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
        ax = axes[-1, j]
        for k, key in enumerate(("tokens.i", "tokens.mv", "tokens.r", "embed_in.mv",
                                 "embed_in.r", "embed_in.i")):
            ys = [e["rms"].get(key) for e in d["epochs"]]
            if any(y is not None for y in ys):
                ax.plot(ep, ys, f"C{k}", label=key, lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        if j == 0:
            ax.set_ylabel("RMS (bridge = embed_in.mv/r)", fontsize=8)
        lever = ", ".join([f"{k} {v}" for k, v in d["stm"].items()]
                          + ([f"stm_lr {d['stm_lr']:g}"] if d.get("stm_lr", 1) != 1 else [])
                          + (["bridge norm"] if d.get("bridge_norm") else [])) or "defaults"
        axes[0, j].set_title(f"{d['name']} ({lever})\n{d['set']} set, seed {d['seed']}: "
                             f"top-1 {d['top1']:.2f}, train loss {d['train_loss']:.2f}",
                             fontsize=8)
    axes[0, 0].legend(fontsize=6, ncol=2)
    axes[-1, 0].legend(fontsize=6)
    fig.suptitle("STM training diagnostics per layer (solid: MV STM, dashed: residual STM); "
                 "measured, benchmarks/stm_diagnostics.py", fontsize=9)
    fig.tight_layout()
    path = out / "stm_diagnostics.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="runs/stm_diag")
    ap.add_argument("--set", choices=["hard", "order"], default="hard")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--temporal", default="stm", choices=["stm", "none"])
    ap.add_argument("--stm", default="{}", help="STMConfig overrides, JSON")
    ap.add_argument("--stm-lr", type=float, default=1.0, help="factor on lr for the STMs")
    ap.add_argument("--bridge-norm", action="store_true",
                    help="DenseConfig.stm_norm: standardise each STM map per clip before "
                         "the dense partition's patch embedding")
    ap.add_argument("--name", default="default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plot", action="store_true")
    args = ap.parse_args()
    if args.plot:
        print(plot(Path(args.out)))
        return
    torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    run(args)
    plot(Path(args.out))


if __name__ == "__main__":
    main()
