"""Core mapping of the spiking partition for each variant at its deployed STM input size.

Builds ``HybridModel(HybridConfig(variant=..., size=...))`` (untrained: the mapping
depends only on shapes and the weight precision), exports both STMs with
``neuro.export.export_stm`` at the STM input size (``HybridConfig.stm_input_size()``),
maps them on every chip preset, with and without weight sharing, and prints one line per
case plus JSON (``--out``). Deployed sizes: ``tiny`` at ``hybrid train``'s default crop
(56 px), ``base`` at the paper preset's (224 px, ``hybrid/training/recipes.py``); ``--size``
overrides both.

    PYTHONPATH=$PWD python benchmarks/mapping_variants.py [--variants tiny base] [--size 56]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from deploy.artifact.branches import read_branches
from deploy.hardware.neurocores.mapping import map_network
from deploy.presets import CHIPS
from hybrid.model import HybridConfig, HybridModel
from hybrid.training.recipes import PRESETS
from neuro.export import export_stm

# crop side each variant is deployed at: train's default, the paper preset's
DEPLOYED = {"tiny": HybridConfig().size[0], "base": PRESETS["paper"].size,
            "large": PRESETS["paper"].size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["tiny", "base"])
    ap.add_argument("--size", type=int, default=None, help="input side (default: config's)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for variant in args.variants:
            torch.manual_seed(0)
            side = args.size or DEPLOYED[variant]
            cfg = HybridConfig(variant=variant, size=(side, side))
            model = HybridModel(cfg)
            size = cfg.stm_input_size()
            paths = [export_stm(model.stm_mv.stm, Path(d) / f"{variant}_mv.h5", size),
                     export_stm(model.stm_res.stm, Path(d) / f"{variant}_r.h5", size)]
            nets = read_branches(paths)
            for chip in CHIPS.values():
                for shared in (True, False):
                    mp = map_network(nets, chip, shared=shared)
                    row = {"variant": variant, "size": list(size), "chip": chip.name,
                           "shared_weights": mp.shared_weights, "cores_used": mp.cores_used,
                           "cores_total": mp.cores_total, "fits": mp.fits,
                           "sequences_per_chip": mp.sequences_per_chip,
                           "neurons": mp.neurons, "synapses": mp.synapses,
                           "synaptic_memory_bits": mp.synaptic_memory_bits,
                           "state_bits": mp.state_bits,
                           "layers": [{"name": m.name, "cores": m.cores,
                                       "cores_lower_bound": m.cores_lower_bound,
                                       "binding": m.binding} for m in mp.layers]}
                    rows.append(row)
                    print(f"{variant:5s} {size[0]}x{size[1]} {chip.name:7s} "
                          f"{'shared' if shared else 'unshared':8s} cores {mp.cores_used:5d}"
                          f" / {mp.cores_total} fits {mp.fits!s:5s} side by side "
                          f"{mp.sequences_per_chip:3d}  per layer "
                          + " ".join(f"{m.cores}({m.binding})" for m in mp.layers))
    text = json.dumps(rows, indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
