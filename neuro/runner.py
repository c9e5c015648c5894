"""Run an exported STM on Lava's Loihi-2 simulator (``fixed_pt``), many sequences per
compiled network, several of them side by side.

Process graph (built from the HDF5 file by :func:`neuro.export.read_network`)::

    BatchSource -> layer_1 -> layer_2 -> layer_3
                      |counts   |counts   |counts, v
                      +---------+---------+--> BatchReadout

A layer is one ``ConvLIF`` process (``conv="fused"``, the default: conv synapses and
soft-reset LIF neurons in one ProcessModel, :mod:`neuro.lava_procs.conv_lif`) or Lava's
``Conv`` Process followed by ``SoftResetLIF`` (``conv="lava"``: Lava's own Conv model,
the reference; ``conv="im2col"``: an exact, faster model for Lava's Conv). All three
compute the same integers.

Tiling: ``tiles`` sequences run side by side in the image plane, as one wider network
(several chips in lock step): tile ``n`` occupies columns ``[n * pitch, n * pitch + W)``
of every layer's (W, H, C) plane. The pitch is a multiple of the strides' product and
leaves gaps at least as wide as each conv's padding; gap neurons never spike, so every
tile sees exactly the zero padding it would see alone (:func:`tile_layout`).

Timestep alignment: Lava's ``Conv`` sends the previous step's result before computing
the current one, so every synapse adds one step. A batch of ``tiles`` sequences takes
``period = T + 3`` Lava steps: frame ``t`` of batch ``b`` enters at Lava step
``g = b * period + t + 1`` (Lava counts from 1) and layer ``k`` (1-based) processes it
at ``g + k``; the last ``3`` steps of a period drain the pipeline. Layer ``k`` resets its
``u, v`` when ``time_step % period == (k + 1) % period`` (inside the simulation), so the
torch step ``t`` of layer ``k`` is Lava step ``b * period + t + 1 + k``. Each ``run``
call spans whole periods; the host sends one message per batch and receives one.
The fused layers compute, send and receive only at the ``T`` steps of each period whose
results are read (``ConvLIF(active=T)``; the drain steps are idle), and the last layer
sends its voltage once per batch unless ``record``.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import math
import multiprocessing.util  # noqa: F401  its exit handler first: ours (below) runs before it
import os
import time
import weakref
from dataclasses import dataclass

import numpy as np

from neuro import quant, shutdown
from neuro.export import StmNetwork, read_network
from neuro.lava_procs.conv_lif import ConvLIF
from neuro.lava_procs.fast_conv import PyConvModelFixedIm2col
from neuro.lava_procs.host_io import (
    BatchReadout,
    BatchSource,
    PyBatchReadoutModel,
    PyBatchSourceModel,
)
from neuro.lava_procs.lava_conv import PyConvModelFixedWide
from neuro.lava_procs.soft_lif import SoftResetLIF
from neuro.watch import Watch

from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.conv.process import Conv

log = logging.getLogger(__name__)


# "fused": one ConvLIF process per layer; "lava": Lava's Conv Process and its own
# PyConvModelFixed + SoftResetLIF; "im2col": the same with neuro's exact im2col Conv model
CONV_MODELS = ("fused", "lava", "im2col")
DEFAULT_TILES = 8  # sequences side by side (the paper's 8 segments of a video)
HOST_AHEAD = 2  # batches the host may send ahead of the one it waits for


def run_cfg(conv: str = "fused") -> Loihi2SimCfg:
    """Loihi-2 bit-accurate simulation; the host I/O processes have no tagged models.
    ``conv="lava"``: Lava's own Conv model (with int32 shape parameters, so that a
    tiled plane wider than 127 columns runs on NumPy 2:
    :mod:`neuro.lava_procs.lava_conv`); ``conv="im2col"``: the exact, faster
    :class:`neuro.lava_procs.fast_conv.PyConvModelFixedIm2col`."""
    if conv not in CONV_MODELS:
        raise ValueError(f"conv must be one of {CONV_MODELS}, got {conv!r}")
    models = {BatchSource: PyBatchSourceModel, BatchReadout: PyBatchReadoutModel}
    if conv == "lava":
        models[Conv] = PyConvModelFixedWide
    elif conv == "im2col":
        models[Conv] = PyConvModelFixedIm2col
    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)


@dataclass
class RunResult:
    v: np.ndarray  # (N, C_out, H', W') float: last layer's v after the last step
    spike_counts: list[np.ndarray]  # per layer: (N, T) spike counts per timestep
    spikes: list[np.ndarray] | None  # per layer: (N, C, H, W, T) spikes, if recorded
    v_int: np.ndarray  # (N, C_out, H', W') the same v in Lava's integer units
    v_seq_int: np.ndarray | None  # (N, C_out, H', W', T) v at every step, if recorded

    def __iter__(self):  # v, spikes = runner.run(x)
        return iter((self.v, self.spike_counts))


def _lava_conv_weight(w: np.ndarray) -> np.ndarray:
    """(C_out, C_in, kH, kW) torch/netx layout -> Lava Conv's (C_out, kW, kH, C_in),
    transformed exactly as lava-dl netx does (``netx.hdf5.Network.create_conv``)."""
    return w[:, :, ::-1, ::-1].transpose((0, 3, 2, 1))


@dataclass(frozen=True)
class Plane:
    """One layer's (or the input's) image plane in the tiled network, along W."""
    frame: int  # columns of the whole plane
    pitch: int  # tile n starts at column n * pitch
    width: int  # columns of one tile (the untiled layer's W)
    tiles: int

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return [(n * self.pitch, n * self.pitch + self.width) for n in range(self.tiles)]


def tile_layout(net: StmNetwork, tiles: int) -> list[Plane]:
    """The input plane and each layer's plane for ``tiles`` sequences side by side: the
    smallest input pitch, a multiple of every stride below it, whose gaps hold each
    conv's padding and keep its windows inside one tile (exactness needs both)."""
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles}")
    widths = [net.input_shape[2]] + [spec.shape[2] for spec in net.layers]
    if tiles == 1:
        return [Plane(w, w, w, 1) for w in widths]
    step = math.prod(spec.stride for spec in net.layers)
    first = step * math.ceil((widths[0] + 1) / step)
    for pitch0 in range(first, first + 64 * step, step):
        planes = [Plane(tiles * pitch0, pitch0, widths[0], tiles)]
        for spec, w_out in zip(net.layers, widths[1:]):
            prev, s, q, k = planes[-1], spec.stride, spec.padding, spec.weight.shape[-1]
            if (prev.pitch - prev.width < q  # the next tile's left padding
                    or s * (w_out - 1) - q + k > prev.pitch):  # a window reaches the next tile
                break
            frame = (prev.frame + 2 * q - k) // s + 1  # Lava Conv's output width
            plane = Plane(frame, prev.pitch // s, w_out, tiles)
            assert frame >= plane.ranges[-1][1], f"tiled plane too narrow: {plane}"
            planes.append(plane)
        else:
            return planes
    raise AssertionError(f"no tile pitch found for input width {widths[0]}")  # unreachable


# runners whose runtime is started: ended at exit (_end_started) if still so
_started: weakref.WeakSet = weakref.WeakSet()


@atexit.register  # registered after multiprocessing's exit handler, so it runs before it
def _end_started() -> None:
    """End the Lava processes of every runner still started as the process exits. One
    that its owner never got (a Ctrl-C just after it started, before the owner stored
    it: `profile` builds one per STM) was in nobody's clean-up, and the exit then
    waited for its processes for good: multiprocessing joins its children there, and
    Lava's ignore SIGINT and SIGTERM."""
    for runner in list(_started):
        with contextlib.suppress(BaseException):  # the process is ending anyway
            runner._terminate()


class LavaRunner:
    """Compiles an exported STM once and streams sequences through it, ``tiles`` at a time
    side by side.

    ``with LavaRunner(path, steps=11) as r: v, spikes = r.run(x)`` with x (N, C, H, W, T).
    The runtime is stopped on ``close()``/exit, also on errors, KeyboardInterrupt and
    SIGTERM (held as :func:`neuro.shutdown.sigterm_as_exit` from compiling to closing).
    """

    def __init__(self, path: str | os.PathLike | StmNetwork, steps: int,
                 record: bool = False, conv: str = "fused", tiles: int = DEFAULT_TILES):
        """``path``: an :func:`neuro.export.export_stm` file, or the network already read
        from one (:func:`neuro.export.read_network`); ``steps``: T per sequence;
        ``record``: also return every layer's spikes and the last layer's v per step;
        ``conv``: the layer processes, ``"fused"`` (one ConvLIF process per layer),
        ``"lava"`` (Lava's own Conv model) or ``"im2col"``; ``tiles``: sequences
        simulated side by side (a ``run`` of N sequences takes ``ceil(N / tiles)``
        periods of ``steps + 3`` Lava steps)."""
        if conv not in CONV_MODELS:
            raise ValueError(f"conv must be one of {CONV_MODELS}, got {conv!r}")
        self.conv = conv
        if steps <= 0:
            raise ValueError(f"steps must be positive, got {steps}")
        if tiles < 1:
            raise ValueError(f"tiles must be >= 1, got {tiles}")
        self.net: StmNetwork = path if isinstance(path, StmNetwork) else read_network(path)
        self.steps = steps
        self.record = record
        self.tiles = tiles
        self.period = steps + len(self.net.layers)
        self.planes = tile_layout(self.net, tiles)
        self._runtime_started = False
        self._ran = False  # a run completed: Lava's stop() works (it hangs before one)
        self._signals = contextlib.ExitStack()
        t0 = time.perf_counter()
        self._build()
        self.build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            self._signals.enter_context(shutdown.sigterm_as_exit())
            with shutdown.lava_forks():
                self.inj.create_runtime(run_cfg=run_cfg(self.conv))
            self._runtime_started = True
            _started.add(self)
            self.compile_s = time.perf_counter() - t0
            log.info("Lava STM built in %.2f s, compiled in %.2f s", self.build_s,
                     self.compile_s)
        except BaseException:  # compile errors, Ctrl-C while starting: leave nothing behind
            self._terminate()
            raise

    def _build(self) -> None:
        net, T, P = self.net, self.steps, self.period
        shapes = [(pl.frame, s[1], s[0]) for pl, s in  # (W, H, C) of every plane
                  zip(self.planes, [net.input_shape] + [spec.shape for spec in net.layers])]
        fused = self.conv == "fused"  # fused layers compute only their T active steps
        self.inj = BatchSource(shape=shapes[0], steps=T, period=P, buffer_size=HOST_AHEAD,
                               active_only=fused)
        self.readout = BatchReadout(layers=[(sh, pl.ranges) for sh, pl in
                                            zip(shapes[1:], self.planes[1:])],
                                    steps=T, period=P, record=self.record,
                                    buffer_size=HOST_AHEAD, active_only=fused)
        src, msg_bits = self.inj.out_port, net.in_bits
        self.lifs = []
        for k, spec in enumerate(net.layers, start=1):
            shape, tiles = shapes[k], self.planes[k].ranges
            if self.conv == "fused":
                lif = ConvLIF(weight=spec.weight, input_shape=shapes[k - 1], shape=shape,
                              stride=spec.stride, padding=spec.padding, vth=spec.vth,
                              dv=spec.dv, du=spec.du, reset_interval=P, reset_offset=k + 1,
                              in_max=2 ** (msg_bits - 1) if msg_bits else 1, tiles=tiles,
                              active=T, v_last_only=not self.record, name=f"layer{k}")
                src.connect(lif.s_in)
            else:
                conv = Conv(weight=_lava_conv_weight(spec.weight), input_shape=shapes[k - 1],
                            padding=spec.padding, stride=spec.stride,
                            num_message_bits=msg_bits, name=f"conv{k}")
                src.connect(conv.s_in)
                assert conv.a_out.shape == shape, (
                    f"layer {k}: Lava Conv gives {conv.a_out.shape}, expected (W,H,C) {shape}")
                lif = SoftResetLIF(shape=shape, vth=spec.vth, dv=spec.dv, du=spec.du,
                                   reset_interval=P, reset_offset=k + 1, tiles=tiles,
                                   name=f"lif{k}")
                conv.a_out.connect(lif.a_in)
            lif.counts_out.connect(getattr(self.readout, f"counts_{k}"))
            if self.record:
                lif.s_out.connect(getattr(self.readout, f"s_{k}"))
            self.lifs.append(lif)
            src, msg_bits = lif.s_out, 0
        self.lifs[-1].v_out.connect(self.readout.v_in)

    def _frames(self, xq: np.ndarray) -> np.ndarray:
        """(N, C, H, W, T) integer inputs -> (batches, T, frame W, H, C) tiled planes."""
        n, c, h, w, T = xq.shape
        pl = self.planes[0]
        nb = math.ceil(n / self.tiles)
        frames = np.zeros((nb, T, self.tiles, pl.pitch, h, c), np.float32)
        x = np.zeros((nb * self.tiles, c, h, w, T), np.float32)
        x[:n] = xq
        # (nb, B, C, H, W, T) -> (nb, T, B, W, H, C)
        frames[..., :w, :, :] = x.reshape(nb, self.tiles, c, h, w, T).transpose(0, 5, 1, 4, 3, 2)
        return frames.reshape(nb, T, self.tiles * pl.pitch, h, c)[:, :, :pl.frame]

    def run(self, x: np.ndarray) -> RunResult:
        """x (N, C, H, W, T) float inputs -> last-layer v and per-layer spike counts."""
        net, T = self.net, self.steps
        if not (x.ndim == 5 and x.shape[1:] == (*net.input_shape, T)):
            raise ValueError(f"LavaRunner expects (N, {net.input_shape}, {T}) inputs, got "
                             f"{x.shape}")
        if not self._runtime_started:
            raise RuntimeError("LavaRunner is closed")
        n = x.shape[0]
        frames = self._frames(quant.quantize_input_np(x, net.in_frac_bits, net.in_bits))
        nb = len(frames)
        out = {"counts_out": [], "v_out": []}
        if self.record:
            out.update({f"s_out_{k}": [] for k in (1, 2, 3)}, v_seq_out=[])
        try:
            self.inj.run(condition=RunSteps(num_steps=nb * self.period, blocking=False),
                         run_cfg=run_cfg(self.conv))
            # every wait below ends with the data or with a runtime process's error
            watch = Watch(self.inj.runtime)
            sent = 0
            for b in range(nb):
                while sent < min(nb, b + HOST_AHEAD):
                    self.inj.send(frames[sent], watch)
                    sent += 1
                for key, val in self.readout.receive(watch).items():
                    out[key].append(val)
            watch.run_done()
            self.inj.wait()
            self._ran = True
        except BaseException:
            # Mid-run, Lava's processes block in their channels and cannot take a stop
            # command: end them at once (also on KeyboardInterrupt), then re-raise.
            self._terminate()
            raise
        cat = {key: np.concatenate(val)[:n] for key, val in out.items()}  # per sequence
        counts = cat["counts_out"].astype(np.int64)  # (N, 3, T)
        v_int = cat["v_out"].astype(np.int64)
        v_float = (v_int / net.layers[-1].v_scale).astype(np.float32)
        return RunResult(
            v=v_float, spike_counts=[counts[:, k] for k in range(len(net.layers))],
            spikes=[cat[f"s_out_{k}"] for k in (1, 2, 3)] if self.record else None,
            v_int=v_int, v_seq_int=cat["v_seq_out"].astype(np.int64) if self.record else None)

    def actor_cpu_s(self) -> float:
        """CPU seconds (user + system) the runtime's Lava processes have used so far."""
        from pathlib import Path

        tick, total = os.sysconf("SC_CLK_TCK"), 0.0
        for actor in shutdown.runtime_actors(self.inj.runtime):
            try:
                fields = Path(f"/proc/{actor.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            except (OSError, IndexError, ValueError):  # ended, or no /proc
                pass
        return total

    @property
    def shm_names(self) -> list[str]:
        """The shared-memory blocks of this runner's runtime, while it is started."""
        return shutdown.runtime_shm_names(self.inj) if self._runtime_started else []

    def _terminate(self) -> None:
        """End the runtime's OS processes now (for an interrupted run) and release its
        shared memory."""
        self._runtime_started = False
        _started.discard(self)
        try:
            shutdown.end_runtime(self.inj)
        finally:
            self._signals.close()

    def close(self) -> None:
        """Stop the Lava runtime (idempotent)."""
        if getattr(self, "inj", None) is not None and self._runtime_started and not self._ran:
            self._terminate()  # Lava 0.10's stop() waits forever for a runtime never run
        if getattr(self, "inj", None) is not None and self._runtime_started:
            self._runtime_started = False
            _started.discard(self)
            try:
                self.inj.stop()
            except Exception as e:  # noqa: BLE001  a failed stop must not hide the real error
                log.warning("stopping the Lava runtime failed: %s", e)
                shutdown.end_runtime(self.inj)
            except BaseException:  # SIGTERM or Ctrl-C while stopping: end it at once
                shutdown.end_runtime(self.inj)
                raise
        if getattr(self, "_signals", None) is not None:
            self._signals.close()

    def __enter__(self) -> LavaRunner:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._runtime_started:
            self._terminate()  # an error, Ctrl-C or SIGTERM: end the processes at once
        self.close()

    def __del__(self):
        self.close()
