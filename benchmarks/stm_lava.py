"""Lava fixed-point time per sequence vs the torch forward of the same sequence.

Default STM (STMConfig()), 2x56x56 input, 11 steps. Prints JSON with:
- torch_float_s / torch_qat_s: torch forward of one sequence (batch 1, best of 10
  after a warm-up, best of 1 and 2 threads), float and the bit-exact fixed-point
  emulation;
- lava_per_sequence_s: Lava ``fixed_pt`` per sequence, streaming --sequences sequences
  through one compiled network, --tiles side by side (best and median of --repeats
  calls; compile time reported apart);
- ratios lava / torch;
- the layer variants (``--variants``, ``conv:tiles``): one ConvLIF process per layer
  (``fused``), Lava's Conv Process with Lava's own model (``lava``: scipy
  ``convolve2d`` per channel pair) or neuro's exact im2col one (``im2col``);
- the machine's load average (the 2 cores are shared: compare ratios, not times);
- breakdown: compute time spent inside the Lava worker processes (timers wrapped
  around the conv function and the LIF update, summed over processes, per sequence),
  and the same numpy work timed in this process; the rest of the Lava time is
  messaging / synchronisation between its processes;
- cProfile's top functions of the host side of ``LavaRunner.run``.

    PYTHONPATH=$PWD python benchmarks/stm_lava.py [--sequences 32] [--repeats 3]
        [--variants fused:8,fused:1,im2col:8,lava:8] [--out stm_lava.json]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import neuro  # noqa: F401
from neuro import quant
from neuro.export import export_stm, read_network
from neuro.runner import LavaRunner, _lava_conv_weight
from neuro.stm import STM, STMConfig
from neuro.verify import random_mv

from lava.proc.conv import utils as conv_utils


def install_compute_timers(folder: Path):
    """Wrap the Lava models' compute (conv, LIF update) with timers that each forked
    worker process writes to ``folder/<what>-<pid>.json`` (every call; tiny files).
    Returns a function that removes them again (the timed runs go without)."""
    from neuro.lava_procs import conv_lif, fast_conv, soft_lif

    from lava.proc.conv import models as conv_models

    saved = [(conv_models, "utils", conv_models.utils),
             (fast_conv, "conv_im2col", fast_conv.conv_im2col),
             (soft_lif.PySoftResetLIFModelFixed, "subthr_dynamics",
              soft_lif.PySoftResetLIFModelFixed.subthr_dynamics),
             (conv_lif.PyConvLIFModelFixed, "_conv", conv_lif.PyConvLIFModelFixed._conv),
             (conv_lif.PyConvLIFModelFixed, "_lif", conv_lif.PyConvLIFModelFixed._lif)]

    def timed(fn, what):
        acc = {"s": 0.0, "calls": 0}

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            acc["s"] += time.perf_counter() - t0
            acc["calls"] += 1
            (folder / f"{what}-{os.getpid()}.json").write_text(json.dumps(acc))
            return out
        return wrapper

    conv_models.utils = type(conv_models.utils)("timed_utils")
    conv_models.utils.__dict__.update(conv_utils.__dict__)
    conv_models.utils.conv = timed(conv_utils.conv, "conv_lava")
    fast_conv.conv_im2col = timed(fast_conv.conv_im2col, "conv_im2col")
    model = soft_lif.PySoftResetLIFModelFixed
    model.subthr_dynamics = timed(model.subthr_dynamics, "lif")
    fused = conv_lif.PyConvLIFModelFixed
    fused._conv = timed(fused._conv, "conv_fused")
    fused._lif = timed(fused._lif, "lif")

    def remove() -> None:
        for obj, name, val in saved:
            setattr(obj, name, val)
    return remove


def read_compute_timers(folder: Path) -> dict:
    out: dict = {}
    for f in folder.glob("*.json"):
        what = f.name.split("-")[0]
        acc = json.loads(f.read_text())
        out[what] = out.get(what, 0.0) + acc["s"]
        f.unlink()
    return out


def lava_cpu_s(runner: LavaRunner) -> float:
    """CPU seconds (user + system) used so far by the runner's Lava processes and this one:
    a measure the other users of a shared machine do not move as much as wall time."""
    return time.process_time() + runner.actor_cpu_s()


def cpu_of(fn, repeats: int = 10) -> float:
    t0 = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - t0) / repeats


def best_of(fn, repeats: int = 5) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def numpy_work_per_sequence(net, x_int: np.ndarray, steps: int) -> dict:
    """Time the models' own numpy work for one sequence: Lava's conv + the LIF update."""
    conv_s, lif_s = 0.0, 0.0
    inp = [x_int[..., t].transpose(2, 1, 0) for t in range(steps)]
    for spec in net.layers:
        w = _lava_conv_weight(spec.weight)
        k = np.array(spec.weight.shape[2:])
        outs = []
        t0 = time.perf_counter()
        for t in range(steps):
            outs.append(conv_utils.conv(inp[t], w, k, np.array([spec.stride] * 2),
                                        np.array([spec.padding] * 2), np.array([1, 1]), 1))
        conv_s += time.perf_counter() - t0
        v = np.zeros(outs[0].shape, np.int32)
        nxt = []
        t0 = time.perf_counter()
        for a in outs:  # the same operations as AbstractPyLifModelFixed + soft reset
            u = np.left_shift(np.int32(a), 6)
            u = np.where(u > 2**23, u - 2**24, u)
            dec = np.int64(v) * (4096 - spec.dv)
            dec = np.int32(np.sign(dec) * np.right_shift(np.abs(dec), 12))
            v = np.clip(dec + u, -(2**23) + 1, 2**23 - 1).astype(np.int32)
            s = v > (spec.vth << 6)
            v[s] -= spec.vth << 6
            nxt.append(s.astype(np.int32))
        lif_s += time.perf_counter() - t0
        inp = nxt
    return {"lava_conv_numpy_s": conv_s, "lif_numpy_s": lif_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default="fused:8,fused:1,im2col:8,lava:8",
                    help="comma-separated conv:tiles layer variants to time")
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--steps", type=int, default=11)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.manual_seed(0)
    stm = STM(STMConfig())
    T, S = args.steps, args.size
    x = random_mv(args.sequences, 2, S, S, T, seed=0)
    x1 = torch.from_numpy(x[:1])
    torch_times = {}
    with torch.no_grad():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for mode in ("float", "qat"):
                stm(x1, quant=mode)  # warm up
                torch_times[f"torch_{mode}_{threads}thread_s"] = best_of(
                    lambda m=mode: stm(x1, quant=m), 10)
                torch_times[f"torch_{mode}_{threads}thread_cpu_s"] = cpu_of(
                    lambda m=mode: stm(x1, quant=m))
        torch.set_num_threads(2)
        out = stm(torch.from_numpy(x), return_spike_maps=True, quant="qat")  # the reference
    torch_float = min(v for k, v in torch_times.items() if "float" in k and "cpu" not in k)
    torch_qat = min(v for k, v in torch_times.items() if "qat" in k and "cpu" not in k)
    torch_float_cpu = torch_times["torch_float_1thread_cpu_s"]
    lava: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = export_stm(stm, Path(tmp) / "stm.h5", (S, S))
        net = read_network(path)
        timers = Path(tmp) / "timers"
        timers.mkdir()
        for variant in args.variants.split(","):
            conv, tiles = variant.split(":")
            with LavaRunner(path, steps=T, conv=conv, tiles=int(tiles)) as runner:
                runner.run(x[:1])  # warm up
                times = []
                prof = cProfile.Profile()
                cpu0 = lava_cpu_s(runner)
                for rep in range(args.repeats):
                    t0 = time.perf_counter()
                    if rep == 0:
                        prof.enable()
                    res = runner.run(x)
                    prof.disable()
                    times.append((time.perf_counter() - t0) / args.sequences)
                cpu_per_seq = (lava_cpu_s(runner) - cpu0) / (args.repeats * args.sequences)
                per_seq = min(times)
            remove = install_compute_timers(timers)  # a second runner, with timers
            with LavaRunner(path, steps=T, conv=conv, tiles=int(tiles)) as timed_runner:
                timed_runner.run(x[:1])
                read_compute_timers(timers)
                timed_runner.run(x)
                compute = read_compute_timers(timers)
            remove()
            exact = bool(np.array_equal(out.v.numpy(), res.v)) and all(
                np.array_equal(a.numpy(), b) for a, b in zip(out.spikes, res.spike_counts))
            lava[variant] = {
                "conv": conv, "tiles": int(tiles),
                "lava_compile_s": runner.compile_s,
                "lava_per_sequence_s": per_seq,
                "lava_per_sequence_median_s": float(np.median(times)),
                "lava_steps_per_sequence": runner.period * math.ceil(args.sequences / int(tiles))
                / args.sequences,
                "ratio_lava_over_torch_float": per_seq / torch_float,
                "ratio_lava_over_torch_qat": per_seq / torch_qat,
                "lava_cpu_s_per_sequence": cpu_per_seq,  # all its processes, mean
                "cpu_ratio_lava_over_torch_float_1thread": cpu_per_seq / torch_float_cpu,
                "matches_torch_qat_exactly": exact,
                "in_lava_conv_s_per_sequence": sum(v for k, v in compute.items()
                                                   if k.startswith("conv")) / args.sequences,
                "in_lava_lif_s_per_sequence": compute.get("lif", 0.0) / args.sequences,
            }
            print(f"{variant}: {1000 * per_seq:.1f} ms per sequence "
                  f"({per_seq / torch_float:.2f}x torch float), CPU {1000 * cpu_per_seq:.1f} ms "
                  f"({cpu_per_seq / torch_float_cpu:.2f}x), exact {exact}", flush=True)
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(8)
            lava[variant]["host_profile"] = buf.getvalue().splitlines()[:22]
    xq = quant.quantize_input_np(x[0], net.in_frac_bits, net.in_bits)
    work = numpy_work_per_sequence(net, xq, T)
    rep = {
        "config": {"input": [2, S, S, T], "widths": list(stm.cfg.widths),
                   "kernels": list(stm.cfg.kernels), "strides": list(stm.cfg.strides),
                   "sequences": args.sequences, "repeats": args.repeats},
        "load_average_1_5_15min": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        **torch_times,
        "torch_float_s": torch_float,  # best over 1 and 2 threads
        "torch_qat_s": torch_qat,
        "numpy_in_this_process": work,
        "lava": {k: {kk: vv for kk, vv in v.items() if kk != "host_profile"}
                 for k, v in lava.items()},
    }
    print(json.dumps(rep, indent=2))
    for variant, r in lava.items():
        print(f"host-side cProfile of LavaRunner.run, {variant} (cumulative):")
        print("\n".join(r["host_profile"]))
    if args.out:
        args.out.write_text(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
