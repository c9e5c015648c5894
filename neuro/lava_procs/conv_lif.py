"""One Lava Process per STM layer: the conv synapses and the soft-reset LIF neurons of a
layer in one ProcessModel (as on Loihi, where a neurocore holds its neurons' synapses).

``ConvLIF`` computes exactly what ``Conv -> SoftResetLIF`` computes (Lava's
``PyConvModelFixed`` followed by :class:`neuro.lava_procs.soft_lif.PySoftResetLIFModelFixed`),
with the same one-step synaptic delay, in one process instead of two, and faster:

- the convolution is torch's ``conv2d`` in float32 (or float64 where a sum could exceed
  2**24), exact because every product and partial sum is an integer the float type holds
  exactly (checked from the weights when the model starts);
- the LIF state is float64 holding integers; Lava's integer steps are written as exact
  float64 operations: ``sign(x) * (|x| >> 12) == trunc(x * 2**-12)`` (the 36-bit product
  is exact in float64), the 24-bit wraps and clips as in ``AbstractPyLifModelFixed``.

No bias (the STM has none). ``tests/test_stm_lava.py`` checks it against the quantised
torch model and against the two-process graph.

Tiling (several sequences side by side in the image plane, see :mod:`neuro.runner`):
``mask`` marks the neurons of the tiles; neurons in the gaps between tiles never spike,
so they act as the zero padding of each tile. ``counts_out`` sends the spike count of
each tile every step.

Active window (``active``): when only the first ``active`` steps after each reset are
read (the runner's ``T`` frames of a ``T + 3``-step period), the layer computes, sends
and receives only where those steps need it: the LIF update and the sends (``s_out``,
``counts_out``, ``v_out``) at the ``active`` steps from the reset, the receive and the
conv one step earlier (the synaptic delay). The layer before it sends exactly then (its
window starts one step earlier), so every channel stays in step. The steps left out
(the pipeline's drain) change no value that is read: the state is zeroed at the next
reset before it is used again. ``v_last_only``: ``v_out`` sends only at the window's
last step (the readout needs no voltage per step unless it records).
"""
from __future__ import annotations

import numpy as np

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

V_LIM = 2**23  # 24-bit u, v
SYN_WRAP = 2**24  # Lava Conv's signed_clamp to 24 bit


def tile_counts(s: np.ndarray, tiles: list[tuple[int, int]]) -> np.ndarray:
    """Spikes (W, H, C) -> per tile (start, stop along W) spike counts (n_tiles,)."""
    return np.array([np.count_nonzero(s[a:b]) for a, b in tiles], dtype=np.int32)


class ConvLIF(AbstractProcess):
    """Conv synapses (``weight`` (C_out, C_in, kH, kW) mantissas, torch layout; input
    (W, H, C_in) Lava layout) + soft-reset LIF (per-layer ``vth`` mantissa, ``dv``, ``du``).
    ``u, v`` reset to 0 when ``time_step % reset_interval == reset_offset``; ``in_max``:
    the largest ``|input message|`` (1 for spikes); ``tiles``: (start, stop) column ranges
    along W of the tiles; neurons outside them never spike; ``active``: steps computed
    after each reset (default ``reset_interval``: all; see the module docstring);
    ``v_last_only``: send ``v_out`` only at the last active step."""

    def __init__(self, *, weight: np.ndarray, input_shape: tuple[int, int, int],
                 shape: tuple[int, int, int], stride: int, padding: int, vth: int, dv: int,
                 du: int, reset_interval: int, reset_offset: int, in_max: int,
                 tiles: list[tuple[int, int]], active: int | None = None,
                 v_last_only: bool = False, name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        if reset_interval <= 0:
            raise ValueError(f"reset_interval must be positive, got {reset_interval}")
        active = reset_interval if active is None else active
        if not (0 < active <= reset_interval):
            raise ValueError(f"active must be in 1..reset_interval ({reset_interval}), got "
                             f"{active}")
        self.proc_params["weight"] = np.asarray(weight, np.int32)
        for key, val in (("stride", stride), ("padding", padding), ("in_max", in_max),
                         ("dv", dv), ("du", du),
                         ("reset_interval", reset_interval), ("active", active),
                         ("reset_offset", reset_offset % reset_interval)):
            self.proc_params[key] = int(val)
        self.proc_params["tiles"] = [(int(a), int(b)) for a, b in tiles]
        self.proc_params["v_last_only"] = bool(v_last_only)
        self.s_in = InPort(shape=input_shape)
        self.s_out = OutPort(shape=shape)
        self.v_out = OutPort(shape=shape)
        self.counts_out = OutPort(shape=(len(tiles),))
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.du = Var(shape=(1,), init=int(du))
        self.dv = Var(shape=(1,), init=int(dv))
        self.vth = Var(shape=(1,), init=int(vth))


@implements(proc=ConvLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyConvLIFModelFixed(PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.float32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.float32, precision=1)
    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    counts_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    u: np.ndarray = LavaPyType(np.ndarray, np.float64, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.float64, precision=24)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        import torch  # in the forked worker: one intra-op thread (the layers run side by side)

        torch.set_num_threads(1)
        self._torch = torch
        p = proc_params
        w = p["weight"]  # (C_out, C_in, kH, kW), torch's cross-correlation layout
        # exact in float32 if no sum can reach 2**24 (float32 holds integers up to 2**24)
        bound = int(np.abs(w).reshape(len(w), -1).sum(1).max()) * p["in_max"]
        self._dtype = torch.float32 if bound < 2**24 else torch.float64
        # The conv runs in (W, H) order (Lava's layout): weight (C_out, C_in, kW, kH).
        self._w = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 1, 3, 2))).to(self._dtype)
        self._w = self._w.contiguous(memory_format=torch.channels_last)
        self._stride, self._pad = p["stride"], p["padding"]
        self._syn_may_wrap = bound >= V_LIM  # |a| < 2**23: Lava's 24-bit signed_clamp is a no-op
        self._u_may_wrap = bound * 64 > V_LIM  # u = a << 6 can leave 24 bit
        # |v| stays below the clip if |u| <= u_max and v decays: |v| <= u_max / leak
        kv = 4096 - int(p["dv"])
        u_max = min(bound * 64, V_LIM)
        self._v_may_clip = (p["du"] != 4095 or self._u_may_wrap or kv >= 4096
                            or u_max * 4096 / (4096 - kv) >= V_LIM - 1)
        self.reset_interval, self.reset_offset = p["reset_interval"], p["reset_offset"]
        self.active, self.v_last_only = p["active"], p["v_last_only"]
        self.tiles = p["tiles"]
        shape = p["shape"]
        self._mask = np.zeros(shape, bool)
        for a, b in self.tiles:
            self._mask[a:b] = True
        self._masked = not self._mask.all()
        self._a = np.zeros(shape, np.float32)  # next step's synaptic input (one-step delay)
        self._s = np.zeros(shape, bool)

    def _conv(self, x: np.ndarray) -> np.ndarray:
        """x (W, H, C_in) -> exact integer sums (W', H', C_out) float64, 24-bit wrapped."""
        torch = self._torch
        xt = torch.from_numpy(x).permute(2, 0, 1)[None]  # (1, C, W, H), channels-last view
        if xt.dtype != self._dtype:
            xt = xt.to(self._dtype)
        out = torch.nn.functional.conv2d(xt, self._w, stride=self._stride, padding=self._pad)
        a = out[0].permute(1, 2, 0).numpy()  # (W', H', C_out), exact integers
        if self._syn_may_wrap:
            a = np.remainder(a.astype(np.float64) + V_LIM, SYN_WRAP) - V_LIM
        return a

    def _lif(self, a: np.ndarray) -> None:
        """Lava's fixed-point LIF step (``AbstractPyLifModelFixed.subthr_dynamics``, soft
        reset) on float64 integers; leaves the spikes in ``self._s``."""
        u, v = self.u, self.v
        ku = 4096 - (int(self.du[0]) + 1)  # ds_offset 1
        if ku:
            np.multiply(u, ku / 4096, out=u)
            np.trunc(u, out=u)
            u += a * 64
        else:
            np.multiply(a, 64, out=u)
        if ku or self._u_may_wrap:  # Lava wraps once: > 2**23 down, <= -2**23 up
            u[u > V_LIM] -= 2 * V_LIM
            u[u <= -V_LIM] += 2 * V_LIM
        np.multiply(v, (4096 - int(self.dv[0])) / 4096, out=v)  # dm_offset 0
        np.trunc(v, out=v)
        v += u
        if self._v_may_clip:
            np.clip(v, -V_LIM + 1, V_LIM - 1, out=v)
        vth = float(int(self.vth[0]) << 6)
        np.greater(v, vth, out=self._s)
        if self._masked:
            self._s &= self._mask
        np.subtract(v, vth, out=v, where=self._s)

    def run_spk(self) -> None:
        phase = (self.time_step - self.reset_offset) % self.reset_interval  # 0: reset
        if phase == 0:
            self.u[:] = 0
            self.v[:] = 0
        if phase < self.active:
            self._lif(self._a)
            self.s_out.send(self._s)
            if not self.v_last_only or phase == self.active - 1:
                self.v_out.send(self.v)
            self.counts_out.send(tile_counts(self._s, self.tiles))
        if (phase + 1) % self.reset_interval < self.active:  # the next step's input
            self._a = self._conv(self.s_in.recv())
