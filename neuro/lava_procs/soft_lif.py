"""Soft-reset LIF with in-simulation sequence reset and a membrane-potential readout.

``SoftResetLIF`` is Lava's LIF with these changes:

- reset: a spiking neuron's voltage drops by the effective threshold (``vth << 6``)
  instead of going to 0 (soft / subtractive reset);
- sequence reset: ``u`` and ``v`` are zeroed when ``time_step % reset_interval ==
  reset_offset`` (as Lava's ``LIFReset``), so one compiled network streams many
  sequences with no ``Var.set``;
- ``v_out`` sends the post-reset voltage every step (a 24-bit graded readout);
- tiling (several sequences side by side in the image plane, :mod:`neuro.runner`):
  neurons outside ``tiles`` (column ranges along W) never spike, so the gaps between
  tiles act as each tile's zero padding; ``counts_out`` sends each tile's spike count.

Its fixed-point model reuses Lava's bit-accurate sub-threshold dynamics
(``AbstractPyLifModelFixed.subthr_dynamics``: 12-bit decays, 24-bit wraps/clips,
activation << 6) unchanged.
"""
from __future__ import annotations

import numpy as np

from neuro.lava_procs.conv_lif import tile_counts

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed


class SoftResetLIF(AbstractProcess):
    """Per-layer scalars: ``vth`` (17-bit mantissa), ``dv`` (12-bit), ``du`` (12-bit)."""

    def __init__(self, *, shape: tuple[int, ...], vth: int, dv: int, du: int = 4095,
                 reset_interval: int, reset_offset: int,
                 tiles: list[tuple[int, int]] | None = None, name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        tiles = [(0, shape[0])] if tiles is None else [(int(a), int(b)) for a, b in tiles]
        self.proc_params["tiles"] = tiles
        if reset_interval <= 0:
            raise ValueError(f"reset_interval must be positive, got {reset_interval}")
        self.proc_params["reset_interval"] = int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset) % int(reset_interval)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.v_out = OutPort(shape=shape)
        self.counts_out = OutPort(shape=(len(tiles),))
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.du = Var(shape=(1,), init=int(du))
        self.dv = Var(shape=(1,), init=int(dv))
        self.vth = Var(shape=(1,), init=int(vth))
        self.bias_mant = Var(shape=shape, init=0)
        self.bias_exp = Var(shape=shape, init=0)


@implements(proc=SoftResetLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PySoftResetLIFModelFixed(AbstractPyLifModelFixed):
    """Bit-accurate fixed-point model of :class:`SoftResetLIF` (the module docstring says
    what differs from Lava's LIF)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    counts_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.reset_interval = proc_params["reset_interval"]
        self.reset_offset = proc_params["reset_offset"]
        self.tiles = proc_params["tiles"]
        self._mask = np.zeros(proc_params["shape"], bool)
        for a, b in self.tiles:
            self._mask[a:b] = True

    def scale_threshold(self):
        self.effective_vth = np.left_shift(self.vth[0], self.vth_shift)
        self.isthrscaled = True

    def run_spk(self):
        a_in = self.a_in.recv().astype(np.int32)
        if self.time_step % self.reset_interval == self.reset_offset:
            self.u[:] = 0
            self.v[:] = 0
        if not self.isbiasscaled:
            self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        self.subthr_dynamics(activation_in=a_in)
        spikes = (self.v > self.effective_vth) & self._mask
        self.v[spikes] -= self.effective_vth  # soft reset
        self.s_out.send(spikes.astype(np.int32))
        self.v_out.send(self.v)
        self.counts_out.send(tile_counts(spikes, self.tiles))
