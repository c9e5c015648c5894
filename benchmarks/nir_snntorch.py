"""How a NIR reader of another framework (snnTorch) runs our exported STM, against ours.

Exports the MV STM of ``HybridModel(HybridConfig(variant))`` (or the given ``--stm`` .h5)
at its deployed size, writes it to NIR (deploy/artifact/nir.py), builds a network from the file
with ``snntorch.import_from_nir`` and runs ``--sequences`` MV-like sequences (on the
input quantisation grid) of 11 steps. Per layer it prints spike counts and the fraction
of (neuron, step) pairs that differ between:
- ours: the quantised torch STM, bit-exact to Lava fixed_pt (one-step delays removed);
- snntorch: snnTorch's import of the NIR file;
- nir_hard: deploy.artifact.nir.simulate, NIR's semantics in float64 (what a reader should run);
- nir_soft: the same with our soft reset (isolates the fixed-point part);
``first_differing_step`` counts from 0 (the first P-frame).
Needs the `nir` and `nir-test` extras.

``--plot PNG``: spikes per step of each layer, ours against snnTorch's.

    PYTHONPATH=$PWD python benchmarks/nir_snntorch.py [--variant tiny] [--size PX] [--sequences 8]
        [--plot nir_snntorch.png] [--out nir_snntorch.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import nir
import numpy as np
import torch
from snntorch.import_nir import import_from_nir

from deploy.artifact.branches import read_branches
from deploy.artifact.nir import simulate, write_nir
from hybrid.model import HybridConfig, HybridModel
from hybrid.training.recipes import PRESETS
from neuro.export import export_stm, load_stm
from neuro.verify import random_mv


def run_snntorch(graph: nir.NIRGraph, x: np.ndarray) -> dict[str, np.ndarray]:
    net = import_from_nir(graph)
    rec: dict[str, list] = {}
    for name in ("lif1", "lif2", "lif3"):
        getattr(net, name).register_forward_hook(
            lambda m, i, o, name=name: rec.setdefault(name, []).append(o.detach().numpy()))
    with torch.no_grad():
        for t in range(x.shape[-1]):
            net(torch.from_numpy(x[..., t]).float())
    return {k: np.stack(v, -1) > 0 for k, v in rec.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="tiny")
    ap.add_argument("--size", type=int, help="crop side [default: the deployed one: tiny "
                    "train's default 56, base/large the paper preset's 224]")
    ap.add_argument("--stm", type=Path, help="an STM .h5 export instead of a fresh model")
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--scale", type=float, default=0.3, help="MV-like input spread")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", type=Path, help="PNG of spikes per step, ours vs snnTorch")
    ap.add_argument("--out", type=Path, help="write the JSON here too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = args.stm
        if path is None:
            torch.manual_seed(args.seed)
            side = args.size or (PRESETS["paper"].size if args.variant != "tiny"
                                 else HybridConfig().size[0])
            cfg = HybridConfig(variant=args.variant, size=(side, side))
            path = export_stm(HybridModel(cfg).stm_mv.stm, Path(d) / "mv.h5",
                              cfg.stm_input_size())
        nets = read_branches([path])
        net = next(iter(nets.values()))
        graph = nir.read(write_nir(nets, d)[0])
        x = random_mv(args.sequences, net.input_shape[0], *net.input_shape[1:], 11,
                      args.seed, scale=args.scale)
        x = np.clip(np.round(x * 2**net.in_frac_bits), -(1 << net.in_bits - 1),
                    (1 << net.in_bits - 1) - 1) / 2**net.in_frac_bits
        stm = load_stm(path)
        with torch.no_grad():
            maps = stm(torch.from_numpy(x).float(), return_spike_maps=True,
                       quant="qat").spike_maps
        runs = {"ours": {f"lif{k + 1}": m.numpy() > 0 for k, m in enumerate(maps)},
                "snntorch": run_snntorch(graph, x),
                "nir_hard": simulate(graph, x)[0],
                "nir_soft": simulate(graph, x, soft_reset=True)[0]}
    rep = {"input": list(net.input_shape), "sequences": args.sequences, "steps": 11,
           "layers": []}
    for k in ("lif1", "lif2", "lif3"):
        row = {"layer": k, **{f"spikes_{n}": int(r[k].sum()) for n, r in runs.items()},
               "neuron_steps": int(runs["ours"][k].size)}
        for a, b in (("ours", "snntorch"), ("snntorch", "nir_hard"), ("ours", "nir_soft")):
            row[f"differ_{a}_vs_{b}"] = float((runs[a][k] != runs[b][k]).mean())
        first = np.argmax((runs["ours"][k] != runs["snntorch"][k]).any(axis=(0, 1, 2, 3))
                          ) if (runs["ours"][k] != runs["snntorch"][k]).any() else None
        row["first_differing_step"] = None if first is None else int(first)
        rep["layers"].append(row)
        print(f"{k}: spikes ours {row['spikes_ours']:,} snnTorch {row['spikes_snntorch']:,} "
              f"| differ ours/snnTorch {row['differ_ours_vs_snntorch']:.4f}, snnTorch/NIR-hard "
              f"{row['differ_snntorch_vs_nir_hard']:.4f}, ours/NIR-soft "
              f"{row['differ_ours_vs_nir_soft']:.6f}; first differing step "
              f"{row['first_differing_step']}")
    text = json.dumps(rep, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.plot:
        plot(runs, args.plot)


def plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharex=True)
    for ax, k in zip(axes, ("lif1", "lif2", "lif3")):
        for name, style, label in (
                ("ours", "-o", "ours (Lava fixed point)"),
                ("snntorch", "--s", "snnTorch, from the NIR file"),
                ("nir_soft", ":", "NIR + soft reset, float64 (on top of ours)")):
            per_step = runs[name][k].sum(axis=(0, 1, 2, 3))
            ax.plot(np.arange(1, len(per_step) + 1), per_step, style, label=label, ms=4,
                    color={"ours": "C0", "snntorch": "C1", "nir_soft": "k"}[name])
        ax.set_title(k)
        ax.set_xlabel("step (P-frame)")
    axes[0].set_ylabel("spikes per step (all sequences)")
    axes[2].legend(loc="center right", fontsize=8)
    fig.suptitle("NIR export run by snnTorch (hard reset) vs ours (soft reset, fixed point)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
