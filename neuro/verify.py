"""Torch (quantised) vs Lava ``fixed_pt``: the check behind ``hybrid stm verify``."""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from neuro.export import export_stm
from neuro.runner import DEFAULT_TILES, LavaRunner
from neuro.stm import STM


def random_mv(n: int, channels: int, h: int, w: int, steps: int, seed: int,
              density: float = 0.3, scale: float = 4.0) -> np.ndarray:
    """Sparse motion-vector-like sequences (N, C, H, W, T): mostly zeros, a few vectors."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, scale, (n, channels, h, w, steps))
    return (x * (rng.random((n, 1, h, w, steps)) < density)).astype(np.float32)


def verify(stm: STM, x: np.ndarray, path: str | os.PathLike | None = None,
           batches: int = 2, progress: Callable[[int], None] | None = None,
           conv: str = "fused", tiles: int = DEFAULT_TILES) -> dict:
    """Export ``stm``, run ``x`` (N, C, H, W, T) through the quantised torch model and
    through Lava (one compiled network, ``tiles`` sequences side by side, ``batches`` run
    calls), and compare.

    ``exact`` is True only if every layer's spikes agree at every neuron and step and
    the last layer's voltages agree at every step (Lava steps aligned as documented in
    :mod:`neuro.runner`). ``progress(n)`` is called after each run call with the
    number of sequences it ran."""
    n, _, h, w, steps = x.shape
    t0 = time.perf_counter()
    with torch.no_grad():
        out = stm(torch.from_numpy(x), return_v_seq=True, return_spike_maps=True, quant="qat")
    torch_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(path) if path is not None else Path(tmp) / "stm.h5"
        export_stm(stm, path, (h, w))
        with LavaRunner(path, steps=steps, record=True, conv=conv,
                        tiles=tiles) as runner:
            v_scale = runner.net.layers[-1].v_scale
            t0 = time.perf_counter()
            parts = []
            for chunk in np.array_split(x, batches):
                if len(chunk):
                    parts.append(runner.run(chunk))
                    if progress is not None:
                        progress(len(chunk))
            lava_s = time.perf_counter() - t0
            compile_s = runner.compile_s
    layers, exact = [], True
    for k in range(len(stm.blocks)):
        s_torch = out.spike_maps[k].numpy().astype(np.int8)
        s_lava = np.concatenate([p.spikes[k] for p in parts])
        same = bool(np.array_equal(s_torch, s_lava))
        exact &= same
        layers.append({"layer": k + 1, "spikes_torch": int(s_torch.sum()),
                       "spikes_lava": int(s_lava.sum()), "spikes_equal": same,
                       "mismatched_spikes": int((s_torch != s_lava).sum())})
    v_torch = out.v_seq.double().numpy() * v_scale  # integer units, exact
    v_lava = np.concatenate([p.v_seq_int for p in parts]).astype(np.float64)
    v_out_lava = np.concatenate([p.v for p in parts])
    max_v_diff = float(np.abs(out.v.numpy() - v_out_lava).max())
    max_v_seq_diff_int = float(np.abs(v_torch - v_lava).max())
    exact &= max_v_diff == 0.0 and max_v_seq_diff_int == 0.0
    return {
        "exact": bool(exact),
        "max_v_diff": max_v_diff,
        "max_v_seq_diff_int": max_v_seq_diff_int,
        "layers": layers,
        "sequences": int(n),
        "conv_model": conv,
        "tiles": tiles,
        "input_shape": list(x.shape[1:]),
        "output_shape": list(out.v.shape[1:]),
        "torch_s": torch_s,
        "lava_compile_s": compile_s,
        "lava_per_sequence_s": lava_s / n,
    }
