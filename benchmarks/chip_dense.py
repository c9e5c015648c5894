"""The dense partition's roofline estimate (deploy/hardware/dense/roofline.py) beside a
measured time.

    python benchmarks/chip_dense.py [--variants tiny base] [--accelerator h100-sxm]
        [--precision fp16] [--repeats 5] [--host-cpu] [--threads 1] [--batch 8] [--json]

Per variant (one video, batch 1, the variant's segments and sizes): the roofline time
of every accelerator preset at its precision, and the measured forward time of
``DenseModel`` on this machine: CUDA when available (fp16 autocast for fp16, else fp32),
else CPU fp32 (which no preset describes: then the measured number stands alone). Prints
a table and, with ``--json``, one JSON object. The roofline assumes peak rates; at batch 1
a GPU is far from them, so expect the measured time to be well above the estimate.

``--host-cpu``: the ``host-cpu`` accelerator as ``hybrid chip`` has it
(deploy/hardware/dense/stage.py): the variant's dense partition (random weights) exported
to ONNX and run by onnxruntime at batch 1 and ``--batch``, beside the roofline calibrated
on this CPU in the same run (GEMM rate at the model's typical layer shape, memory
bandwidth, launch floor), and their ratio.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from ann.config import VARIANTS
from ann.model import DenseModel
from deploy.hardware.dense.roofline import dense_layers, roofline, summarise
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


def host_cpu(name: str, threads: int, batch: int, repeats: int) -> dict:
    """The host-cpu dense stage of variant ``name`` (random weights): measured and
    calibrated roofline, in one run."""
    import tempfile
    from pathlib import Path

    from ann.onnx_export import export_onnx
    from deploy.hardware.dense.stage import dense_stage

    cfg = VARIANTS[name]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(DenseModel(cfg).eval(), Path(tmp) / "dense.onnx")
        d, _ = dense_stage(dense_layers(cfg), accelerator("host-cpu"), "fp32", onnx,
                           threads=threads, batch=batch, repeats=repeats)
    est = d["estimate"]
    print(f"{name} on host-cpu ({d['title']}, {threads} thread(s)): measured "
          f"{d['time_s'] * 1e3:.3f} ms a video at batch 1, "
          f"{d['measurement']['per_video_pipelined_s'] * 1e3:.3f} ms at batch {batch}; "
          f"calibrated roofline {est['time_s'] * 1e3:.3f} ms (ideal {est['ideal_s'] * 1e3:.3f} "
          f"ms), ratio {est['ratio_to_measured']:.2f}; achieved fraction "
          f"{d['achieved_fraction']:.2f} at GEMM {tuple(d['calibration']['gemm_shape'])}, "
          f"launch floor {d['launch_s'] * 1e6:.2f} us x {d['launches']} nodes")
    return {"measured_s": d["time_s"],
            "measured_batch_s": d["measurement"]["per_video_pipelined_s"], "batch": batch,
            "estimated_s": est["time_s"], "ideal_s": est["ideal_s"],
            "ratio": est["ratio_to_measured"], "energy_j": d["energy_j"],
            "energy_label": d["energy_label"], "calibration": d["calibration"],
            "launches": d["launches"], "session_start_s": d["measurement"]["session_start_s"],
            "cpu_s": d["measurement"]["batch_1"]["cpu_s"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=["tiny", "base"])
    p.add_argument("--accelerator", default="h100-sxm",
                   help="the preset the measured GPU is compared with")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--host-cpu", action="store_true",
                   help="also the host-cpu accelerator: onnxruntime here beside its roofline")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
           "compared_with": args.accelerator, "variants": {}}
    if args.host_cpu:
        out["host_cpu"] = {n: host_cpu(n, args.threads, args.batch, args.repeats)
                           for n in args.variants}
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
