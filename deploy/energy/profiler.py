"""The energy profiler: spike-driven ACs of the spiking partition against the dense MACs,
per layer and per video, costed under an energy preset (:mod:`deploy.presets`).

Counting rules (``shared/notes/energy.md``):

- a spike-fed STM layer: ACs = the sum over the input spikes actually emitted of each
  spike's exact fan-out, the number of weights it touches (stride and padding aware;
  what Sinabs' ``SynOpCounter`` and SpikingJelly's counters count), from recorded spike
  maps: the torch model's (:func:`stm_counts`) or a Lava run's (:func:`lava_counts`,
  from ``RunResult.spikes``), both through :func:`count_stm`;
- the first STM layer, fed analog MV / residual values, counts its dense MACs; its
  event-driven count (fan-out of the nonzero graded input messages, NeuroBench's
  Effective_MACs) is kept too, for neurocore presets;
- neuron updates: every neuron of a layer, every timestep;
- the paper's reading, beside ours and labelled: every STM layer as ACs, rate x dense
  synapses (``timesteps x neurons x fan-in x mean input rate``; appendix Sec. 1);
- the bridge: the last STM layer's membrane potentials read out once a sequence, one
  fixed-point-to-float multiply (``v_int / vScale``) each;
- dense partition: ``ann.counting`` per video of S segments, times clips x crops.

Shapes: spike maps and inputs are (N, C, H, W, T): N sequences (views x segments of a
video), T timesteps (P-frames).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from ann.config import DenseConfig
from ann.counting import count as dense_count
from deploy.presets import EnergyPreset
from neuro import quant
from neuro.stm import STM, STMConfig

# The paper's method row (UCF-101 table, 8x1 views, per video), to print beside ours.
PAPER_ROW = {"macs": 0.15e12, "acs": 3.99e9, "energy_j": 0.734,
             "source": "Das Biswas et al., the paper's UCF-101 table, method row "
                       "(0.15 T MACs, 3.99 G ACs, 0.734 J per video, views 8x1)"}
PARTITIONS = ("spiking", "bridge", "dense")


@dataclass(frozen=True)
class ConvGeometry:
    """One conv-LIF layer: a square ``kernel`` conv with zero ``padding`` on both sides."""

    name: str  # e.g. 'stm.mv.1'
    c_in: int
    c_out: int
    kernel: int
    stride: int
    padding: int
    in_hw: tuple[int, int]  # (H, W) of the input map
    analog_input: bool  # fed analog values (counts MACs), not spikes (counts ACs)

    @property
    def out_hw(self) -> tuple[int, int]:
        return tuple((n + 2 * self.padding - self.kernel) // self.stride + 1 for n in self.in_hw)

    @property
    def neurons(self) -> int:
        return self.c_out * self.out_hw[0] * self.out_hw[1]

    @property
    def dense_macs(self) -> int:
        """MACs of one timestep of one sequence if every input were nonzero."""
        return self.neurons * self.c_in * self.kernel ** 2


def stm_geometry(cfg: STMConfig, hw: tuple[int, int], prefix: str = "stm") -> list[ConvGeometry]:
    """The three layers of ``STM(cfg)`` on an (H, W) input (padding k // 2, as the STM)."""
    chans, out = (cfg.in_channels, *cfg.widths), []
    for i, (k, s, size) in enumerate(zip(cfg.kernels, cfg.strides, cfg.layer_sizes(*hw))):
        g = ConvGeometry(f"{prefix}.{i + 1}", chans[i], chans[i + 1], k, s, k // 2,
                         tuple(hw), analog_input=i == 0)
        if g.out_hw != size:
            raise ValueError(f"{g.name}: geometry {g.out_hw} != the STM's {size}")
        out.append(g)
        hw = size
    return out


def _axis_fan_out(n_in: int, n_out: int, k: int, stride: int, pad: int) -> torch.Tensor:
    """(n_in,) the number of output positions each input position reaches along one axis:
    outputs o with 0 <= i + pad - o * stride < k."""
    tap = torch.arange(n_in)[:, None] + pad - torch.arange(n_out)[None, :] * stride
    return ((tap >= 0) & (tap < k)).sum(1)


def fan_out(g: ConvGeometry) -> torch.Tensor:
    """(H, W) int64: the weights one input event at (h, w), in any input channel, touches:
    reached output positions x C_out (separable per axis)."""
    (h, w), (ho, wo) = g.in_hw, g.out_hw
    fy = _axis_fan_out(h, ho, g.kernel, g.stride, g.padding)
    fx = _axis_fan_out(w, wo, g.kernel, g.stride, g.padding)
    return fy[:, None] * fx[None, :] * g.c_out


@dataclass
class LayerCount:
    """One spiking-partition layer over N sequences of T steps (a video's views)."""

    geometry: ConvGeometry
    sequences: int  # N
    steps: int  # T
    input_events: int  # nonzero inputs: spikes, or nonzero analog values (layer 1)
    synops: int  # exact fan-out sum over the input events
    out_spikes: list[int]  # (T,) spikes this layer emitted per step, summed over sequences

    @property
    def kind(self) -> str:
        return "mac" if self.geometry.analog_input else "ac"

    @property
    def dense_macs(self) -> int:
        return self.geometry.dense_macs * self.sequences * self.steps

    @property
    def ops(self) -> int:
        """Our count: dense MACs for the analog-fed layer, exact ACs otherwise."""
        return self.dense_macs if self.geometry.analog_input else self.synops

    @property
    def input_rate(self) -> float:
        g = self.geometry
        return self.input_events / (self.sequences * self.steps * g.c_in * g.in_hw[0] * g.in_hw[1])

    @property
    def paper_acs(self) -> float:
        """The paper's reading: timesteps x neurons x fan-in synapses x mean input rate,
        as ACs, for every STM layer (analog-fed included)."""
        return self.dense_macs * self.input_rate

    @property
    def neuron_updates(self) -> int:
        return self.geometry.neurons * self.sequences * self.steps

    @property
    def firing_rate(self) -> list[float]:
        """(T,) spikes per neuron per step, mean over the sequences."""
        return [s / (self.geometry.neurons * self.sequences) for s in self.out_spikes]

    def __add__(self, other: LayerCount) -> LayerCount:
        if not (self.geometry == other.geometry and self.steps == other.steps):
            raise ValueError(f"cannot add counts of {self.geometry.name} ({self.steps} steps) and "
            f"{other.geometry.name} ({other.steps} steps)")
        return LayerCount(self.geometry, self.sequences + other.sequences, self.steps,
                          self.input_events + other.input_events, self.synops + other.synops,
                          [a + b for a, b in zip(self.out_spikes, other.out_spikes)])


def count_layer(g: ConvGeometry, x, out_spikes) -> LayerCount:
    """Counts of layer ``g`` from its input ``x`` (N, C_in, H, W, T), spikes or analog
    values (torch or numpy), and its own output spikes (N, C_out, H', W', T)."""
    x, s = torch.as_tensor(np.asarray(x)), torch.as_tensor(np.asarray(out_spikes))
    if not (x.ndim == 5 and tuple(x.shape[1:4]) == (g.c_in, *g.in_hw)):
        raise ValueError(f"{g.name}: input maps {tuple(x.shape)} do not fit (N, {g.c_in}, "
                         f"{g.in_hw[0]}, "
        f"{g.in_hw[1]}, T)")
    if tuple(s.shape) != (x.shape[0], g.c_out, *g.out_hw, x.shape[4]):
        raise ValueError(f"{g.name}: output spikes {tuple(s.shape)} do not fit (N, {g.c_out}, "
        f"{g.out_hw[0]}, {g.out_hw[1]}, T) for input {tuple(x.shape)}")
    if not g.analog_input:
        if not (bool(((x == 0) | (x == 1)).all())):
            raise ValueError(f"{g.name}: spike maps must be 0/1")
    events = (x != 0).sum(dim=(0, 1, 4))  # (H, W) input events per position
    return LayerCount(g, int(x.shape[0]), int(x.shape[4]), int(events.sum()),
                      int((events.long() * fan_out(g)).sum()),
                      [int(v) for v in (s != 0).sum(dim=(0, 1, 2, 3))])


def count_stm(geometry: list[ConvGeometry], x, spike_maps: list) -> list[LayerCount]:
    """Per-layer counts of an STM run: ``x`` its input (N, C, H, W, T) as the first layer
    sees it (the graded messages in fixed point), ``spike_maps`` each layer's output
    spikes (N, C, H, W, T): ``STMOutput.spike_maps`` or Lava's ``RunResult.spikes``."""
    if len(spike_maps) != len(geometry):
        raise ValueError(f"{len(spike_maps)} spike maps for {len(geometry)} layers")
    inputs = [x, *spike_maps[:-1]]
    return [count_layer(g, i, s) for g, i, s in zip(geometry, inputs, spike_maps)]


@torch.no_grad()
def stm_counts(stm: STM, x: torch.Tensor, prefix: str = "stm",
               mode: str | None = None) -> list[LayerCount]:
    """Runs the torch STM on ``x`` (N, C, H, W, T), in quant mode ``mode`` ("float" or
    "qat"; default: the STM's own), and counts its spikes. The first layer's input
    events are the nonzero graded messages the deployed STM receives
    (``round(x * 2**input_frac_bits) != 0``, what a Lava run is sent), in float mode
    too: a value that quantises to 0 sends no message."""
    out = stm(x, return_spike_maps=True, quant=mode)
    msgs = quant.quantize_input(x.double(), stm.cfg.input_frac_bits, stm.cfg.input_bits)
    return count_stm(stm_geometry(stm.cfg, tuple(x.shape[2:4]), prefix), msgs, out.spike_maps)


def lava_counts(runner, x: np.ndarray, prefix: str = "stm") -> list[LayerCount]:
    """Runs ``x`` (N, C, H, W, T) through a ``neuro.runner.LavaRunner(record=True)`` (an
    exported STM on Lava ``fixed_pt``) and counts the spikes Lava emitted."""
    if not runner.record:
        raise RuntimeError("lava_counts needs LavaRunner(..., record=True)")
    net = runner.net
    msgs = quant.quantize_input_np(x, net.in_frac_bits, net.in_bits)  # what Lava is sent
    spikes = runner.run(x).spikes
    return count_stm(stm_geometry(net.config, tuple(x.shape[2:4]), prefix), msgs, spikes)


@dataclass
class Row:
    """One row of the profile, per video."""

    name: str
    partition: str  # spiking, bridge or dense
    kind: str  # mac or ac
    ops: int
    spiking: LayerCount | None = None  # spiking layers: the counts behind ``ops``

    def energy_j(self, p: EnergyPreset) -> float:
        c = self.spiking
        if c is None:
            return self.ops * p.mac_j
        syn = c.synops * p.ac_j if (p.event_driven or not c.geometry.analog_input) \
            else c.dense_macs * p.mac_j
        return syn + c.neuron_updates * p.neuron_j

    def as_dict(self, p: EnergyPreset) -> dict:
        d = {"name": self.name, "partition": self.partition, "kind": self.kind,
             "ops": self.ops, "energy_j": self.energy_j(p)}
        if self.spiking is not None:
            c, g = self.spiking, self.spiking.geometry
            d |= {"input_spikes": c.input_events if not g.analog_input else 0,
                  "input_events": c.input_events, "input_rate": c.input_rate,
                  "synops": c.synops, "dense_macs": c.dense_macs,
                  "fan_out_max": int(fan_out(g).max()), "neurons": g.neurons,
                  "neuron_updates": c.neuron_updates,
                  "firing_rate": float(np.mean(c.firing_rate)),
                  "firing_rate_per_step": c.firing_rate, "paper_acs": c.paper_acs,
                  # NeuroBench's name for the same count (tests/test_neurobench.py)
                  ("Effective_MACs" if g.analog_input else "Effective_ACs"): c.synops}
        return d


def bridge_row(name: str, last: LayerCount) -> Row:
    """The bridge of one STM: its last layer's C x H' x W' potentials, once a sequence."""
    return Row(name, "bridge", "mac", last.geometry.neurons * last.sequences)


def dense_rows(cfg: DenseConfig, views: int) -> list[Row]:
    """``ann.counting`` rows of the dense partition for ``views`` clips x crops."""
    return [Row(c.name, "dense", "mac", c.macs * views) for c in dense_count(cfg) if c.macs]


def video_rows(stms: dict[str, list[LayerCount]], dense_cfg: DenseConfig, views: int) -> list[Row]:
    """All rows of one video: ``stms`` maps a modality to its STM's layer counts over all
    the video's sequences (``views`` x the dense config's segments)."""
    rows = []
    for m, counts in stms.items():
        rows += [Row(c.geometry.name, "spiking", c.kind, c.ops, c) for c in counts]
        rows.append(bridge_row(f"bridge.{m}", counts[-1]))
    return rows + dense_rows(dense_cfg, views)


def _stats(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)),
            "max": float(np.max(values))}


def _totals(rows: list[Row], p: EnergyPreset) -> dict:
    by = {part: sum(r.energy_j(p) for r in rows if r.partition == part) for part in PARTITIONS}
    return {"macs": sum(r.ops for r in rows if r.kind == "mac"),
            "acs": sum(r.ops for r in rows if r.kind == "ac"),
            "neuron_updates": sum(r.spiking.neuron_updates for r in rows if r.spiking),
            "energy_j": sum(by.values()), "energy_j_by_partition": by}


def paper_reading(rows: list[Row], p: EnergyPreset) -> dict:
    """Our model counted the paper's way: every STM layer's rate-based ACs, the dense
    partition's MACs (the bridge and neuron updates left out, as the paper does)."""
    macs = sum(r.ops for r in rows if r.partition == "dense")
    acs = sum(r.spiking.paper_acs for r in rows if r.spiking)
    return {"macs": macs, "acs": acs, "energy_j": macs * p.mac_j + acs * p.ac_j,
            "label": "paper's reading: all STM layers as ACs = rate x dense synapses"}


@dataclass
class Profile:
    """The rows of every profiled video (same layers, same order)."""

    videos: list[list[Row]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # one per video
    views: str = ""  # 'SxC'

    def add(self, name: str, rows: list[Row]) -> None:
        if self.videos:
            if [r.name for r in rows] != [r.name for r in self.videos[0]]:
                raise ValueError(f"video {name}: its layers differ from {self.names[0]}'s")
        self.videos.append(rows)
        self.names.append(name)

    def mean_rows(self) -> list[Row]:
        """Per layer: the counts summed over the videos, as one 'mean video' (ops and
        input spikes divided by the number of videos; rates are over all sequences)."""
        n, out = len(self.videos), []
        for layer in zip(*self.videos):
            r0 = layer[0]
            c = None
            if r0.spiking is not None:
                total = sum((r.spiking for r in layer[1:]), r0.spiking)
                c = dataclasses.replace(total, sequences=total.sequences / n,
                                        input_events=total.input_events / n,
                                        synops=total.synops / n,
                                        out_spikes=[s / n for s in total.out_spikes])
            out.append(Row(r0.name, r0.partition, r0.kind, sum(r.ops for r in layer) / n, c))
        return out

    def report(self, p: EnergyPreset) -> dict:
        """The JSON report under preset ``p``: ``layers`` (mean per video), ``partitions``,
        ``per_video`` (mean, min, max and each video), ``paper_reading``, ``paper_row``."""
        if not self.videos:
            raise ValueError("no videos profiled")
        mean = self.mean_rows()
        each = [{"video": n, **_totals(rows, p)} for n, rows in zip(self.names, self.videos)]
        per_video = {k: _stats([v[k] for v in each])
                     for k in ("macs", "acs", "neuron_updates", "energy_j")}
        parts = {part: {"macs": sum(r.ops for r in mean if r.partition == part and r.kind == "mac"),
                        "acs": sum(r.ops for r in mean if r.partition == part and r.kind == "ac"),
                        "energy_j": sum(r.energy_j(p) for r in mean if r.partition == part)}
                 for part in PARTITIONS}
        return {"preset": p.to_dict(), "views": self.views, "videos": len(self.videos),
                "layers": [r.as_dict(p) for r in mean], "partitions": parts,
                "per_video": per_video | {"videos": each},
                "paper_reading": paper_reading(mean, p), "paper_row": PAPER_ROW}
