"""The dense partition's roofline estimate (deploy/hardware/accelerator.py) beside a measured time.

    python benchmarks/chip_dense.py [--variants tiny base] [--accelerator h100-sxm]
        [--precision fp16] [--repeats 5] [--json]

Per variant (one video, batch 1, the variant's segments and sizes): the roofline time
of every accelerator preset at its precision, and the measured forward time of
``DenseModel`` on this machine: CUDA when available (fp16 autocast for fp16, else fp32),
else CPU fp32 (which no preset describes: then the measured number stands alone). Prints
a table and, with ``--json``, one JSON object. The roofline assumes peak rates; at batch 1
a GPU is far from them, so expect the measured time to be well above the estimate.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from ann.config import VARIANTS
from ann.model import DenseModel
from deploy.hardware.accelerator import dense_layers, roofline, summarise
from deploy.hardware.targets import ACCELERATORS, accelerator

NATURAL = {"h100-sxm": "fp16", "a100-sxm": "fp16", "jetson-orin": "int8", "tianjic-ann": "int8"}


@torch.no_grad()
def measure(name: str, device: str, precision: str, repeats: int) -> float:
    cfg = VARIANTS[name]
    model = DenseModel(cfg).eval().to(device)
    args = [torch.randn(1, cfg.segments, *cfg.in_shape(m), device=device)
            if m in cfg.modalities else None for m in ("i", "mv", "r")]
    auto = torch.autocast("cuda", torch.float16) if device == "cuda" and precision == "fp16" \
        else torch.autocast("cpu", enabled=False)
    times = []
    with auto:
        for _ in range(repeats + 2):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(*args)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return min(times[2:])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=["tiny", "base"])
    p.add_argument("--accelerator", default="h100-sxm",
                   help="the preset the measured GPU is compared with")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
           "compared_with": args.accelerator, "variants": {}}
    for name in args.variants:
        layers = dense_layers(VARIANTS[name])
        est = {a: summarise(roofline(layers, accelerator(a), prec), accelerator(a), prec)
               for a, prec in NATURAL.items() if a in ACCELERATORS}
        prec = args.precision if device == "cuda" else "fp32"
        meas = measure(name, device, prec, args.repeats)
        out["variants"][name] = {
            "macs": est["h100-sxm"]["macs"], "measured_s": meas, "measured_precision": prec,
            "estimated_s": {a: e["time_s"] for a, e in est.items()},
            "estimated_energy_j": {a: e["energy_j"] for a, e in est.items()}}
        print(f"{name}: {est['h100-sxm']['macs'] / 1e9:.2f} G MACs; measured on "
              f"{out['device']} ({prec}): {meas * 1e3:.3f} ms; roofline: " + ", ".join(
                  f"{a} {e['time_s'] * 1e3:.4f} ms" for a, e in est.items()))
    if args.json:
        print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
