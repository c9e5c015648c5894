"""The built-in demo behind ``hybrid demo`` (the README's main-job command).

Foundation stage: a tiny end-to-end smoke through PyAV, torch and a Lava simulation.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def run_smoke(out: str | Path, echo: Callable[[str], None] = log.info) -> dict:
    """Encode a moving-square MPEG-4 clip, read its block motion with PyAV, pool it per
    16x16 block with torch, drive one Lava LIF neuron per block with it (``fixed_pt``),
    and write ``smoke.json`` to ``out``. Moving blocks must spike, static ones not."""
    import numpy as np
    import torch

    import neuro  # noqa: F401  (lava compatibility first)
    from hybrid.video.selfcheck import decode_block_motion, encode_moving_square

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    w, h, steps = 64, 48, 20
    types, motions = decode_block_motion(encode_moving_square(12, (w, h)))
    grid = torch.zeros(1, 1, h // 8, w // 8)  # (1, 1, H/8, W/8) |motion| on the 8 px grid
    for m in motions:
        for x, y, dx, dy in m:
            grid[0, 0, min(y // 8, h // 8 - 1), min(x // 8, w // 8 - 1)] += abs(dx) + abs(dy)
    per_block = torch.nn.functional.avg_pool2d(grid, 2).flatten()  # 16x16 blocks
    echo(f"pyav+torch: {''.join(t[0] for t in types)}, block motion {per_block.tolist()}")

    bias = (per_block * 50).round().clamp(0, 4000).to(torch.int64).numpy()
    lif = LIF(shape=bias.shape, bias_mant=bias, bias_exp=6, vth=200, du=4095, dv=0)
    mon = Monitor()
    mon.probe(lif.s_out, steps)
    try:
        lif.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = np.asarray(mon.get_data()[lif.name]["s_out"]).sum(axis=0)
    finally:
        lif.stop()
    moving = bias > 0
    result = {"blocks": int(bias.size), "moving_blocks": int(moving.sum()),
              "spikes_moving": int(spikes[moving].sum()),
              "spikes_static": int(spikes[~moving].sum())}
    echo(f"lava fixed_pt: {result}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "smoke.json").write_text(json.dumps(result, indent=2))
    if result["moving_blocks"] == 0 or result["spikes_moving"] == 0 or result["spikes_static"]:
        raise RuntimeError(f"smoke run gave an unexpected result: {result}")
    return result


def run_demo(out: str | Path, echo: Callable[[str], None] = log.info) -> dict:
    return run_smoke(out, echo)
