"""Host I/O of a batched STM network: one message per batch each way, not per step.

A batch is ``T`` input frames followed by ``period - T`` all-zero steps (the pipeline
drains and the layers reset). Every Lava step belongs to one batch:
``i = (time_step - 1) % period`` is its step within the batch.

- ``BatchSource``: the host sends one batch (T, W, H, C) of input frames (``send``,
  blocking when ``buffer_size`` batches wait); the model takes it at the batch's first
  step and sends frame ``i`` (zeros for ``i >= T``) every step;
- ``BatchReadout``: collects, per layer, the tile spike counts (and, with ``record``,
  the spike maps and the last layer's voltage every step), cuts the tiles out of the
  image plane into torch's (n_tiles, C, H, W) layout and sends one batch to the host at
  its last step (``receive``). Layer ``k`` (1-based) runs the batch's frame ``t`` at
  step ``i = t + k``.

``active_only`` (for layers that compute only their active window, ``ConvLIF(active=T)``):
the source sends only the ``T`` frames, no zero steps, and the readout receives each
layer's counts (and spike maps) only at the steps of its ``T`` frames and the last
layer's voltage only at its last one (every one of them with ``record``).
"""
from __future__ import annotations

import numpy as np

from lava.magma.core.decorator import implements, requires
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.io.utils import receive_empty_blocking, send_full_blocking

LAYERS = 3  # the STM's conv-LIF layers


class BatchSource(AbstractProcess):
    """``shape`` (W, H, C) frames; ``steps`` T frames per batch; ``period`` steps per batch."""

    def __init__(self, *, shape: tuple[int, int, int], steps: int, period: int,
                 buffer_size: int = 2, active_only: bool = False) -> None:
        super().__init__(shape=shape, steps=steps, period=period, active_only=active_only)
        if not (0 < steps <= period):
            raise ValueError(f"need 0 < steps ({steps}) <= period ({period})")
        self.in_port = InPort(shape=(steps, *shape))
        self.in_port.flag_external_pipe(buffer_size=buffer_size)
        self.out_port = OutPort(shape=shape)

    def send(self, batch: np.ndarray, watch=None) -> None:
        """One batch (T, W, H, C) of frames (blocks while the pipe is full; with a
        :class:`neuro.watch.Watch`, only while the runtime's processes live)."""
        port = getattr(self.in_port, "external_pipe_csp_send_port", None)
        assert port is not None, "BatchSource.send needs a created runtime"
        if watch is not None:
            watch.send_ready(port)
        send_full_blocking(port, batch)


@implements(proc=BatchSource, protocol=LoihiProtocol)
@requires(CPU)
class PyBatchSourceModel(PyLoihiProcessModel):
    in_port: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.float32)
    out_port: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.float32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.steps, self.period = proc_params["steps"], proc_params["period"]
        self.active_only = proc_params["active_only"]
        self._zeros = np.zeros(proc_params["shape"], np.float32)
        self._batch = None

    def run_spk(self) -> None:
        i = (self.time_step - 1) % self.period
        if i == 0:
            self._batch = receive_empty_blocking(self.in_port.csp_ports[-1], None)
        if i < self.steps:
            self.out_port.send(self._batch[i])
        elif not self.active_only:
            self.out_port.send(self._zeros)


class BatchReadout(AbstractProcess):
    """``layers``: per layer (shape (W, H, C) of its image plane, tiles [(start, stop)]);
    ``steps`` T; ``period``; ``record``: also spike maps and voltages every step;
    ``active_only``: receive only the steps that are read (module docstring)."""

    def __init__(self, *, layers: list[tuple[tuple[int, int, int], list[tuple[int, int]]]],
                 steps: int, period: int, record: bool, buffer_size: int = 2,
                 active_only: bool = False) -> None:
        if len(layers) != LAYERS:
            raise ValueError(f"BatchReadout takes {LAYERS} layers, got {len(layers)}")
        super().__init__(layers=layers, steps=steps, period=period, record=record,
                         active_only=active_only)
        n = len(layers[0][1])
        (w, h, c), tiles = layers[-1]
        tile_w = tiles[0][1] - tiles[0][0]
        self.counts_1 = InPort(shape=(n,))
        self.counts_2 = InPort(shape=(n,))
        self.counts_3 = InPort(shape=(n,))
        self.s_1 = InPort(shape=layers[0][0])  # spike maps: connected with record only
        self.s_2 = InPort(shape=layers[1][0])
        self.s_3 = InPort(shape=layers[2][0])
        self.v_in = InPort(shape=(w, h, c))
        outs = {"counts_out": (n, LAYERS, steps), "v_out": (n, c, h, tile_w)}
        recorded = {f"s_out_{k}": (n, shape[2], shape[1], t[0][1] - t[0][0], steps)
                    for k, (shape, t) in enumerate(layers, start=1)}
        recorded["v_seq_out"] = (n, c, h, tile_w, steps)
        if record:
            outs.update(recorded)
        for name in recorded.keys() - outs.keys():  # the model declares every port
            setattr(self, name, OutPort(shape=(1,)))
        for name, shape in outs.items():
            port = OutPort(shape=shape)
            port.flag_external_pipe(buffer_size=buffer_size)
            setattr(self, name, port)
        self.out_names = list(outs)

    def receive(self, watch=None) -> dict[str, np.ndarray]:
        """One batch's results: ``counts_out`` (n_tiles, 3, T), ``v_out`` (n_tiles, C, H,
        W) last-step voltage; with record ``s_out_k`` (n_tiles, C, H, W, T) and
        ``v_seq_out`` (n_tiles, C, H, W, T). Blocks until they come; with a
        :class:`neuro.watch.Watch`, only while the runtime's processes live."""
        out = {}
        for name in self.out_names:
            port = getattr(getattr(self, name), "external_pipe_csp_recv_port", None)
            assert port is not None, "BatchReadout.receive needs a created runtime"
            if watch is not None:
                watch.recv_ready(port)
            out[name] = receive_empty_blocking(port, None)
        return out


@implements(proc=BatchReadout, protocol=LoihiProtocol)
@requires(CPU)
class PyBatchReadoutModel(PyLoihiProcessModel):
    counts_1: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    counts_2: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    counts_3: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    s_1: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int8)
    s_2: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int8)
    s_3: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int8)
    v_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    counts_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    s_out_1: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int8)
    s_out_2: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int8)
    s_out_3: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int8)
    v_seq_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = proc_params
        self.layers, self.steps, self.period = p["layers"], p["steps"], p["period"]
        self.record, self.active_only = p["record"], p["active_only"]
        n = len(self.layers[0][1])
        self._counts = np.zeros((n, LAYERS, self.steps), np.int32)
        if self.record:
            self._spikes = [np.zeros((n, shape[2], shape[1], t[0][1] - t[0][0], self.steps),
                                     np.int8) for shape, t in self.layers]
            (_, h, c), tiles = self.layers[-1]
            self._v_seq = np.zeros((n, c, h, tiles[0][1] - tiles[0][0], self.steps), np.int32)

    def _tiles(self, x: np.ndarray, layer: int) -> np.ndarray:
        """(W, H, C) image plane -> (n_tiles, C, H, W_tile) (torch layout)."""
        return np.stack([x[a:b] for a, b in self.layers[layer][1]]).transpose(0, 3, 2, 1)

    def run_spk(self) -> None:
        i = (self.time_step - 1) % self.period
        ports = (self.counts_1, self.counts_2, self.counts_3)
        spike_ports = (self.s_1, self.s_2, self.s_3)
        for k in range(LAYERS):
            t = i - (k + 1)  # the frame this layer ran at this step (< 0, >= T: none)
            if self.active_only and not 0 <= t < self.steps:
                continue  # the layer sent nothing at this step
            c = ports[k].recv()
            s = spike_ports[k].recv() if self.record else None
            if 0 <= t < self.steps:
                self._counts[:, k, t] = c
                if s is not None:
                    self._spikes[k][..., t] = self._tiles(s, k)
        t = i - LAYERS
        if self.active_only and t != self.steps - 1 and not (self.record and 0 <= t < self.steps):
            return  # the last layer sent no voltage at this step
        v = self.v_in.recv()
        if self.record and 0 <= t < self.steps:
            self._v_seq[..., t] = self._tiles(v, -1)
        if t == self.steps - 1:  # the batch's last step: send it
            self.counts_out.send(self._counts)
            self.v_out.send(self._tiles(v, -1))
            if self.record:
                for k in range(LAYERS):
                    getattr(self, f"s_out_{k + 1}").send(self._spikes[k])
                self.v_seq_out.send(self._v_seq)
