"""Run an exported STM on Lava's Loihi-2 simulator (``fixed_pt``), many sequences per
compiled network.

Process graph (built from the HDF5 file by :func:`neuro.export.read_network`)::

    Injector -> Conv_1 -> SoftResetLIF_1 -> Conv_2 -> SoftResetLIF_2 -> Conv_3 -> SoftResetLIF_3
                                 |s_out                    |s_out                 |s_out, v_out
                             Extractor                 Extractor            Extractor x2

Timestep alignment: Lava's ``Conv`` sends the previous step's result before computing
the current one, so every synapse adds one step. Input frame ``t`` of sequence ``n``
is injected at Lava time step ``g = n*T + t + 1`` (Lava counts from 1) and layer ``k``
(1-based) processes it at ``g + k``. Layer ``k`` therefore resets its ``u, v`` when
``time_step % T == (k + 1) % T`` (inside the simulation), and the torch step ``t`` of
layer ``k`` is Lava step ``n*T + t + 1 + k``. The sequences are pipelined back to back;
each ``run`` call appends ``ceil(3 / T)`` all-zero sequences so the last real one
drains and every call spans whole periods of ``T`` steps (the reset phase persists).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from neuro import quant, shutdown
from neuro.export import StmNetwork, read_network
from neuro.lava_procs.fast_conv import PyConvModelFixedIm2col
from neuro.lava_procs.soft_lif import SoftResetLIF

from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.conv.process import Conv
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
from lava.proc.io.injector import Injector, PyLoihiInjectorModel

log = logging.getLogger(__name__)


CONV_MODELS = ("lava", "im2col")  # Lava's PyConvModelFixed, or neuro's exact im2col one


def run_cfg(conv: str = "lava") -> Loihi2SimCfg:
    """Loihi-2 bit-accurate simulation; the host I/O processes have no tagged models.
    ``conv="im2col"`` swaps Lava's scipy-based Conv model for the exact, faster
    :class:`neuro.lava_procs.fast_conv.PyConvModelFixedIm2col`."""
    assert conv in CONV_MODELS, f"conv must be one of {CONV_MODELS}, got {conv!r}"
    models = {Injector: PyLoihiInjectorModel, Extractor: PyLoihiExtractorModel}
    if conv == "im2col":
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


def _to_whc(x: np.ndarray) -> np.ndarray:
    """(C, H, W) -> Lava's (W, H, C)."""
    return np.ascontiguousarray(x.transpose(2, 1, 0))


class LavaRunner:
    """Compiles an exported STM once and streams sequences through it.

    ``with LavaRunner(path, steps=11) as r: v, spikes = r.run(x)`` with x (N, C, H, W, T).
    The runtime is stopped on ``close()``/exit, also on errors, KeyboardInterrupt and
    SIGTERM (held as :func:`neuro.shutdown.sigterm_as_exit` from compiling to closing).
    """

    def __init__(self, path: str | os.PathLike, steps: int, record: bool = False,
                 conv: str = "lava"):
        """``path``: an :func:`neuro.export.export_stm` file; ``steps``: T per sequence;
        ``record``: also return every layer's spikes and the last layer's v per step;
        ``conv``: the Conv ProcessModel, ``"lava"`` (Lava's own) or ``"im2col"``."""
        assert conv in CONV_MODELS, f"conv must be one of {CONV_MODELS}, got {conv!r}"
        self.conv = conv
        assert steps > 0, f"steps must be positive, got {steps}"
        self.net: StmNetwork = read_network(path)
        self.steps = steps
        self.record = record
        self._runtime_started = False
        self._ran = False  # a run completed: Lava's stop() works (it hangs before one)
        self._signals = contextlib.ExitStack()
        t0 = time.perf_counter()
        self._build()
        self.build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            self._signals.enter_context(shutdown.sigterm_as_exit())
            self.inj.create_runtime(run_cfg=run_cfg(self.conv))
            self._runtime_started = True
        except BaseException:  # compile errors, Ctrl-C while starting: leave nothing behind
            self._terminate()
            raise
        self.compile_s = time.perf_counter() - t0
        log.info("Lava STM built in %.2f s, compiled in %.2f s", self.build_s, self.compile_s)

    def _build(self) -> None:
        net, T = self.net, self.steps
        c, h, w = net.input_shape
        self.inj = Injector(shape=(w, h, c), buffer_size=4)
        src, shape = self.inj.out_port, (w, h, c)
        msg_bits = net.in_bits
        self.lifs, self.spike_taps = [], []
        for k, spec in enumerate(net.layers, start=1):
            conv = Conv(weight=_lava_conv_weight(spec.weight), input_shape=shape,
                        padding=spec.padding, stride=spec.stride,
                        num_message_bits=msg_bits, name=f"conv{k}")
            src.connect(conv.s_in)
            oc, oh, ow = spec.shape
            shape = (ow, oh, oc)
            assert conv.a_out.shape == shape, (
                f"layer {k}: Lava Conv gives {conv.a_out.shape}, the file says (W,H,C) {shape}")
            lif = SoftResetLIF(shape=shape, vth=spec.vth, dv=spec.dv, du=spec.du,
                               reset_interval=T, reset_offset=(k + 1) % T, name=f"lif{k}")
            conv.a_out.connect(lif.a_in)
            tap = Extractor(shape=shape, buffer_size=4)
            lif.s_out.connect(tap.in_port)
            self.lifs.append(lif)
            self.spike_taps.append(tap)
            src, msg_bits = lif.s_out, 0
        self.v_tap = Extractor(shape=shape, buffer_size=4)
        self.lifs[-1].v_out.connect(self.v_tap.in_port)

    def run(self, x: np.ndarray) -> RunResult:
        """x (N, C, H, W, T) float inputs -> last-layer v and per-layer spike counts."""
        net, T = self.net, self.steps
        assert x.ndim == 5 and x.shape[1:] == (*net.input_shape, T), (
            f"LavaRunner expects (N, {net.input_shape}, {T}) inputs, got {x.shape}")
        assert self._runtime_started, "LavaRunner is closed"
        n = x.shape[0]
        pad = math.ceil(len(net.layers) / T)
        xq = quant.quantize_input_np(x, net.in_frac_bits, net.in_bits)
        total = (n + pad) * T
        zero = np.zeros(_to_whc(xq[0, ..., 0]).shape)
        counts = [np.zeros((n, T), np.int64) for _ in net.layers]
        spikes = ([np.zeros((n, *s.shape, T), np.int8) for s in net.layers]
                  if self.record else None)
        v_int = np.zeros((n, *net.layers[-1].shape), np.int64)
        v_seq = np.zeros((*v_int.shape, T), np.int64) if self.record else None
        try:
            self.inj.run(condition=RunSteps(num_steps=total, blocking=False),
                         run_cfg=run_cfg(self.conv))
            self._stream(xq, n, total, counts, spikes, v_int, v_seq, zero)
            self.inj.wait()
            self._ran = True
        except BaseException:
            # Mid-run, Lava's processes block in their channels and cannot take a stop
            # command: end them at once (also on KeyboardInterrupt), then re-raise.
            self._terminate()
            raise
        v_float = (v_int / net.layers[-1].v_scale).astype(np.float32)
        return RunResult(v=v_float, spike_counts=counts, spikes=spikes, v_int=v_int,
                         v_seq_int=v_seq)

    def _stream(self, xq, n, total, counts, spikes, v_int, v_seq, zero) -> None:
        """Feed the injector one frame per Lava step and collect the taps' outputs."""
        T, n_layers = self.steps, len(self.net.layers)
        for g in range(1, total + 1):  # Lava time step
            i = g - 1
            self.inj.send(_to_whc(xq[i // T, ..., i % T]) if i < n * T else zero)
            for k, tap in enumerate(self.spike_taps, start=1):
                s = tap.receive()
                j = g - 1 - k  # sequence-major index of the torch step this layer ran
                if 0 <= j < n * T:
                    s = s.transpose(2, 1, 0)  # (C, H, W)
                    counts[k - 1][j // T, j % T] = int(s.sum())
                    if spikes is not None:
                        spikes[k - 1][j // T, ..., j % T] = s
            v = self.v_tap.receive()
            j = g - 1 - n_layers
            if 0 <= j < n * T and v_seq is not None:
                v_seq[j // T, ..., j % T] = v.transpose(2, 1, 0)
            if 0 <= j < n * T and j % T == T - 1:
                v_int[j // T] = v.transpose(2, 1, 0)

    def _terminate(self) -> None:
        """End the runtime's OS processes now (for an interrupted run) and release its
        shared memory."""
        self._runtime_started = False
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
