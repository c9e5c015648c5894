"""Small, fast self-checks of the spiking stack, used by ``hybrid doctor``.

Each check returns ``(ok, detail)``; none raises for an expected failure.
"""
from __future__ import annotations

import numpy as np

from neuro import compat


def lif_reference(steps: int, bias_mant, bias_exp: int, vth: int, du: int, dv: int) -> np.ndarray:
    """Integer reference of Lava's bit-accurate LIF with a constant bias and no input.

    Returns the voltage after each step, shape (steps, N), hard reset to 0 on a spike
    (``v > vth << 6``), as ``lava.proc.lif.models.PyLifModelBitAcc`` computes it.
    """
    bias = np.asarray(bias_mant, dtype=np.int64) << bias_exp
    u = np.zeros_like(bias)
    v = np.zeros_like(bias)
    out = np.zeros((steps, bias.size), dtype=np.int64)

    def decay(x, d):
        y = x * (4096 - d)
        return np.sign(y) * (np.abs(y) >> 12)

    for t in range(steps):
        u = decay(u, du + 1)
        v = decay(v, dv) + u + bias
        v = np.where(v > (vth << 6), 0, v)
        out[t] = v
    return out


def check_compat() -> tuple[bool, str]:
    """The compatibility layer is active where needed, and lava imports."""
    st = compat.status()
    if st["var_model_fix_needed"] and not st["var_model_hook"]:
        return False, "var_model import hook is not installed"
    if not st["torchvision"] and not st["object_detection_placeholder"]:
        return False, "slayer.object_detection has no placeholder and torchvision is missing"
    try:
        import lava.lib.dl.netx  # noqa: F401
        import lava.lib.dl.slayer  # noqa: F401
        import lava.magma.compiler.var_model  # noqa: F401
    except Exception as exc:  # report, don't crash the doctor
        return False, f"lava import failed: {type(exc).__name__}: {exc}"
    return True, (
        f"Python {st['python']}: var_model hook {'on' if st['var_model_hook'] else 'off'}, "
        f"object_detection placeholder {'on' if st['object_detection_placeholder'] else 'off'}"
    )


def run_fixed_pt(lif, var: str, steps: int) -> np.ndarray:
    """Run one Lava process ``steps`` steps in the fixed_pt simulation; returns the probed
    ``var`` as ``(steps, *shape)``. Leaves no Lava process behind, on Ctrl-C and SIGTERM too."""
    from neuro.shutdown import end_runtime, lava_forks

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.monitor.process import Monitor

    mon = Monitor()
    mon.probe(getattr(lif, var), steps)
    try:
        with lava_forks():  # Lava forks its actors here
            lif.run(condition=RunSteps(num_steps=steps),
                    run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        got = np.asarray(mon.get_data()[lif.name][var])
    except BaseException:
        end_runtime(lif)
        raise
    lif.stop()
    return got


def check_lava_lif(steps: int = 12) -> tuple[bool, str]:
    """A 3-neuron LIF runs in Lava's fixed_pt simulation and gives the reference voltages."""
    from lava.proc.lif.process import LIF

    params = dict(bias_mant=[100, 700, 2000], bias_exp=6, vth=100, du=4095, dv=512)
    got = run_fixed_pt(LIF(shape=(3,), **params), "v", steps).astype(np.int64)
    want = lif_reference(steps, **params)
    if got.shape != want.shape or not np.array_equal(got, want):
        return False, f"voltages differ from the reference: lava {got[-1]} vs ref {want[-1]}"
    spikes = int((np.diff(want, axis=0) < 0).sum())
    return True, f"{steps} steps, 3 neurons, voltages equal the reference ({spikes} resets)"


def check_slayer_block() -> tuple[bool, str]:
    """A small SLAYER CUBA dense block runs forward and backward."""
    import torch

    from lava.lib.dl import slayer

    torch.manual_seed(0)
    params = {"threshold": 0.5, "current_decay": 0.5, "voltage_decay": 0.1}
    block = slayer.block.cuba.Dense(params, 8, 4, weight_scale=2)
    x = (torch.rand(2, 8, 10) < 0.5).float()
    y = block(x)
    y.sum().backward()
    grad = block.synapse.weight.grad
    if y.shape != (2, 4, 10) or grad is None or not torch.isfinite(grad).all():
        return False, f"unexpected output {tuple(y.shape)} or gradient"
    return True, f"{tuple(x.shape)} -> {tuple(y.shape)}, {int(y.sum())} spikes, finite grads"
