"""Time of the STM's first layer on neurocores, modelled from the architecture's own
per-event figures: *estimated*.

SANA-FE has no graded spikes, so layer 1 (8-bit graded input messages) is not simulated
(:mod:`deploy.hardware.neurocores.simulation` replays its Lava spikes as input neurons, which cost
nothing). Its time is modelled here event by event, with the latencies of SANA-FE's own
Loihi file (``sanafe/examples/loihi.yaml``, figures from Davies et al., IEEE Micro 2018,
read at run time by :func:`event_costs`) and SANA-FE's own per-core rule
(``schedule_messages_timestep_simple`` in its ``src/schedule.cpp``: a core's step takes
the longer of its neuron processing and its message processing, the layer's step the
slowest core's). Per core of layer 1 (its tiling, as the mapping places it) and step:

- message processing: every nonzero graded input value is one message to each core
  whose neurons read it, ``latency_message_in`` each, plus ``latency_process_spike`` of
  the conv synapse for every synapse it touches on that core (its exact fan-out there);
- neuron processing: ``latency_access_neuron`` for every neuron on the core (SANA-FE
  visits each one every step), ``latency_update_neuron`` for those that received input,
  ``latency_spike_out`` for those that fired and ``latency_message_out`` for every
  message a spike sends (one per distinct layer-2 destination core).

Not modelled: sending the graded messages (the host or the embedded x86 cores), graded
payload widths (a graded message costs what a spike message costs), network hops.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

SOURCE = ("SANA-FE's loihi.yaml (sanafe 2.2.9, figures from Davies et al., 'Loihi: A "
          "Neuromorphic Manycore Processor with On-Chip Learning', IEEE Micro 38(1), 2018), "
          "per-core rule of SANA-FE's simple timing model (src/schedule.cpp)")


@dataclass(frozen=True)
class EventCosts:
    """Latency of one event on a neurocore, in seconds."""

    message_in: float  # a message arriving at a core (axon in)
    synop: float  # one synapse a message touches (conv synapse)
    access_neuron: float  # visiting one neuron in a step (every neuron, every step)
    update_neuron: float  # updating a neuron that received input
    spike_out: float  # a neuron that fires
    message_out: float  # one message a spike sends (axon out)
    source: str = SOURCE

    def __post_init__(self):
        for k in ("message_in", "synop", "access_neuron", "update_neuron", "spike_out",
                  "message_out"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"event costs: {k} must be a finite number >= 0 (s), "
                                 f"got {v!r}")


def _value(lines: list[str], entry: str, key: str, origin: str) -> float:
    """The value of ``key`` in the entry named ``entry`` (the first ``key:`` after its
    ``- name:`` line, before the next entry)."""
    start = next((i for i, ln in enumerate(lines)
                  if re.match(rf"^\s*- name:\s*{re.escape(entry)}\s*(#.*)?$", ln)), None)
    if start is None:
        raise ValueError(f"{origin}: no entry {entry!r}")
    for ln in lines[start + 1:]:
        if re.match(r"^\s*- name:", ln):
            break
        m = re.match(rf"^\s*{key}:\s*([-+0-9.eE]+)\s*(#.*)?$", ln)
        if m:
            return float(m.group(1))
    raise ValueError(f"{origin}: entry {entry!r} has no {key!r}")


def event_costs(stock) -> EventCosts:
    """The per-event latencies of SANA-FE's Loihi file (a
    :class:`deploy.hardware.neurocores.loihi_arch.StockLoihi`)."""
    t, o = stock.tile, stock.origin
    return EventCosts(
        message_in=_value(t, "loihi_in", "latency_message_in", o),
        synop=_value(t, "loihi_conv_synapse", "latency_process_spike", o),
        access_neuron=_value(t, "loihi_lif", "latency_access_neuron", o),
        update_neuron=_value(t, "loihi_lif", "latency_update_neuron", o),
        spike_out=_value(t, "loihi_lif", "latency_spike_out", o),
        message_out=_value(t, "loihi_out", "latency_message_out", o))


def _bands(n_out: int, size: int, n_in: int, k: int, stride: int, pad: int):
    """Per band of ``size`` outputs along one axis: (first output, end output, first
    input read, end input read)."""
    out = []
    for o0 in range(0, n_out, size):
        o1 = min(n_out, o0 + size)
        lo = max(o0 * stride - pad, 0)
        out.append((o0, o1, lo, max(min((o1 - 1) * stride - pad + k, n_in), lo)))
    return out


def synops_per_position(nonzero: np.ndarray, k: int, stride: int, pad: int,
                        out_hw: tuple[int, int]) -> np.ndarray:
    """(H', W', T): per output position, the synapses the step's input events touch there
    for ONE output channel (``nonzero`` (H, W, T): nonzero inputs summed over channels)."""
    h, w, T = nonzero.shape
    ho, wo = out_hw
    p = np.zeros((h + 2 * pad + k, w + 2 * pad + k, T), np.int64)
    p[pad:pad + h, pad:pad + w] = nonzero
    out = np.zeros((ho, wo, T), np.int64)
    for ky in range(k):
        for kx in range(k):
            out += p[ky:ky + stride * ho:stride, kx:kx + stride * wo:stride][:ho, :wo]
    return out


def layer_time(in_shape: tuple[int, int, int], weight_shape: tuple[int, ...], stride: int,
               pad: int, out_shape: tuple[int, int, int], tiling, messages: np.ndarray,
               spikes: np.ndarray, fanout_cores: np.ndarray, costs: EventCosts,
               steps: int | None = None) -> dict:
    """Per step, the modelled time of layer 1 on its cores.

    ``messages`` (C_in, H, W, T): the graded input (nonzero = one message); ``spikes``
    (C, H', W', T) its output spikes; ``fanout_cores`` ``(C*H'*W',)`` the messages each of its
    spikes sends; ``tiling`` (:class:`deploy.hardware.neurocores.simulation.Tiling`) its neurons per
    core; ``steps`` >= T: steps to cost (the simulated sequence: after T, no input, every
    neuron still visited). Returns ``time_s`` (steps,), ``cores``, and per step the counts
    behind it (``messages_in``, ``synops``, ``updated``, ``fired``, ``messages_out``)."""
    c_in, h, w = in_shape
    c, ho, wo = out_shape
    k = weight_shape[-1]
    T = messages.shape[-1]
    steps = T if steps is None else steps
    if messages.shape[:3] != (c_in, h, w) or spikes.shape != (c, ho, wo, T):
        raise ValueError(f"layer 1: messages {messages.shape} / spikes {spikes.shape} do not "
                         f"fit input {in_shape}, output {out_shape}, T = {T}")
    if steps < T:
        raise ValueError(f"layer 1: {steps} steps for a sequence of {T}")
    nz = (messages != 0).sum(0)  # (H, W, T) messages per input position (all channels)
    syn = synops_per_position(nz, k, stride, pad, (ho, wo))  # (H', W', T)
    touched = syn > 0
    fired = spikes.astype(np.int64)
    sent = fired * fanout_cores.reshape(c, ho, wo)[..., None]
    groups = range(0, c, tiling.channels)
    rows = _bands(ho, tiling.rows, h, k, stride, pad)
    cols = _bands(wo, tiling.cols, w, k, stride, pad)
    gen = np.zeros((len(groups) * len(rows) * len(cols), T))
    proc = np.zeros_like(gen)
    i, ncore = 0, []
    counts = {q: np.zeros(T, np.int64) for q in ("messages_in", "synops", "updated", "fired",
                                                   "messages_out")}
    for c0 in groups:
        cg = min(c, c0 + tiling.channels) - c0
        for y0, y1, iy0, iy1 in rows:
            for x0, x1, ix0, ix1 in cols:
                m_in = nz[iy0:iy1, ix0:ix1].sum((0, 1))
                s = cg * syn[y0:y1, x0:x1].sum((0, 1))
                upd = cg * touched[y0:y1, x0:x1].sum((0, 1))
                f = fired[c0:c0 + cg, y0:y1, x0:x1].sum((0, 1, 2))
                mo = sent[c0:c0 + cg, y0:y1, x0:x1].sum((0, 1, 2))
                n = cg * (y1 - y0) * (x1 - x0)
                ncore.append(n)
                gen[i] = (n * costs.access_neuron + upd * costs.update_neuron
                          + f * costs.spike_out + mo * costs.message_out)
                proc[i] = m_in * costs.message_in + s * costs.synop
                for q, v in zip(counts, (m_in, s, upd, f, mo)):
                    counts[q] += v
                i += 1
    per_core = np.maximum(gen, proc)  # SANA-FE's simple model, per core
    # after T: no input, no spikes; every neuron is still visited
    idle = float(max(ncore)) * costs.access_neuron
    time_s = np.concatenate([per_core.max(0), np.full(steps - T, idle)])
    return {"time_s": time_s.tolist(), "cores": i,
            **{q: v.tolist() for q, v in counts.items()}}
