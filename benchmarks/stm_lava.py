"""Lava fixed-point time per sequence vs the torch forward of the same sequence.

Default STM (STMConfig()), 2x56x56 input, 11 steps. Prints JSON with:
- torch_float_s / torch_qat_s: torch forward of one sequence (batch 1), float and the
  bit-exact fixed-point emulation;
- lava_per_sequence_s: Lava ``fixed_pt`` per sequence, streaming --sequences sequences
  through one compiled network (compile time reported apart);
- ratios lava / torch;
- breakdown: the numpy work the Lava process models do per sequence, timed in this
  process (Lava's own ``conv`` utility and the LIF update), so the rest of the Lava
  time is messaging / synchronisation between its processes;
- cProfile's top functions of the host side of ``LavaRunner.run``.

    PYTHONPATH=$PWD python benchmarks/stm_lava.py [--sequences 8] [--out stm_lava.json]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import neuro  # noqa: F401
from neuro.export import export_stm, read_network
from neuro.runner import LavaRunner, _lava_conv_weight
from neuro.stm import STM, STMConfig
from neuro.verify import random_mv

from lava.proc.conv import utils as conv_utils


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
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--steps", type=int, default=11)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    stm = STM(STMConfig())
    T, S = args.steps, args.size
    x = random_mv(args.sequences, 2, S, S, T, seed=0)
    x1 = torch.from_numpy(x[:1])
    with torch.no_grad():
        torch_float = best_of(lambda: stm(x1))
        stm.set_quant("qat")
        torch_qat = best_of(lambda: stm(x1))
        out = stm(torch.from_numpy(x), return_spike_maps=True)
        stm.set_quant("float")
    with tempfile.TemporaryDirectory() as tmp:
        path = export_stm(stm, Path(tmp) / "stm.h5", (S, S))
        net = read_network(path)
        with LavaRunner(path, steps=T) as runner:
            runner.run(x[:1])  # warm up
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            res = runner.run(x)
            prof.disable()
            lava_s = (time.perf_counter() - t0) / args.sequences
            compile_s = runner.compile_s
    exact = bool(np.array_equal(out.v.numpy(), res.v)) and all(
        np.array_equal(a.numpy(), b) for a, b in zip(out.spikes, res.spike_counts))
    xq = np.clip(np.round(x[0] * 2**net.in_frac_bits), -128, 127)
    work = numpy_work_per_sequence(net, xq, T)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(12)
    rep = {
        "config": {"input": [2, S, S, T], "widths": list(stm.cfg.widths),
                   "kernels": list(stm.cfg.kernels), "strides": list(stm.cfg.strides),
                   "sequences": args.sequences, "torch_threads": torch.get_num_threads()},
        "torch_float_s": torch_float,
        "torch_qat_s": torch_qat,
        "lava_compile_s": compile_s,
        "lava_per_sequence_s": lava_s,
        "lava_per_step_ms": 1000 * lava_s / T,
        "ratio_lava_over_torch_float": lava_s / torch_float,
        "ratio_lava_over_torch_qat": lava_s / torch_qat,
        "lava_matches_torch_qat": exact,
        **work,
        "numpy_work_share_of_lava_time": (work["lava_conv_numpy_s"] + work["lif_numpy_s"])
        / lava_s,
    }
    print(json.dumps(rep, indent=2))
    print("host-side cProfile of LavaRunner.run (cumulative):")
    print("\n".join(buf.getvalue().splitlines()[:40]))
    if args.out:
        args.out.write_text(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
