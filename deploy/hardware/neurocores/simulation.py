"""Neurocore estimate of the spiking partition with SANA-FE: time and energy of every
timestep, spikes and messages per layer, on a Loihi architecture description generated
at run time from the one the installed ``sanafe`` package ships.

SANA-FE ("Simulating Advanced Neuromorphic Architectures for Fast Exploration", Sandia /
UT Austin; the ``sanafe`` package) is GPL-3.0: this is the ONLY module that imports it,
and only inside :func:`require_sanafe` (``pip install -e '.[chip]'``). This project ships
no file derived from it: :func:`stock_loihi` reads SANA-FE's own ``examples/loihi.yaml``
from the installed package (its per-event energies and latencies, from Davies et al.
2018) and changes only where input units sit and how many tiles the mesh has.

How an exported STM (:class:`neuro.export.StmNetwork`) becomes a SANA-FE network
(settings measured bit-exact against the project's Lava run, ``shared/notes/chip.md``):

- SANA-FE has no graded spikes, so the first layer (8-bit graded input) is not simulated:
  its output spikes, recorded from the Lava run, drive the deeper layers as input
  neurons; its cost comes from the profiler under a neurocore energy preset (labelled);
- layers 2..L: one neuron group each, ``loihi_lif`` soma, ``reset_mode = soft``,
  ``threshold = vThMant``, ``leak_decay = (4096 - vDecay) / 4096`` (the exported integer
  decay), ``input_decay = 0``, weights = the integer mantissas (SANA-FE's units are
  Lava's / 64); every conv tap that lands inside the input is an explicit edge (SANA-FE's
  conv2d connection has no padding);
- Lava saturates v at +-(2^23 - 1); SANA-FE matches the negative side with
  ``reverse_threshold`` + ``saturate``; the positive side cannot clip when
  ``dv > 9 C_in max|w| 64 4096 / (2^23 - 1)``-style bounds hold, which :func:`build`
  checks (:func:`can_saturate`) and reports;
- placement: each layer's neurons go to cores tile by tile, (channels x rows x columns)
  per core, from ``mapping.json`` (the mapping issue's layer-to-core assignment) or a
  default spatial tiling; input neurons go to the input tiles;
- layer k (k = 2..L) lags the input by k - 1 steps: T + L - 1 steps are simulated and
  the chip is reset between sequences (``chip.reset()`` is exact).
"""
from __future__ import annotations

import contextlib
import functools
import io
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deploy.hardware.neurocores import loihi_arch
from deploy.presets import LOIHI
from neuro.export import StmNetwork

INSTALL_HINT = ("SANA-FE is not installed; it is an optional extra (GPL-3.0): "
                "pip install -e '.[chip]'  (or: pip install sanafe==2.2.9)")
V_MAX = 2 ** 23 - 1  # Lava's 24-bit signed voltage
UNITS = 64  # Lava integer units per SANA-FE unit (weights are mantissas, Lava shifts by 6)
NEURONS_PER_CORE = LOIHI.neurons_per_core  # Davies et al. 2018 (deploy/presets.py)
STATS = ("synapse_energy", "dendrite_energy", "soma_energy", "network_energy",
         "total_energy", "sim_time", "hops", "fired", "updated")


class MissingExtra(RuntimeError):
    """An optional dependency is not installed (the message says how to install it)."""


def require_sanafe():
    """The ``sanafe`` module; :class:`MissingExtra` naming the install command without it."""
    try:
        import sanafe
    except ImportError as e:
        raise MissingExtra(INSTALL_HINT) from e
    return sanafe


def edges(spec_in: tuple[int, int, int], weight: np.ndarray, stride: int, pad: int,
          out_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every synapse of a padded conv that lands inside the input: (src, dst, w) with
    src / dst flat (C, H, W) indices of the input / output maps, w the weight
    ``weight[co, ci, ky, kx]`` (cross-correlation, as torch and Lava's netx layout)."""
    c_in, h, w = spec_in
    c_out, ho, wo = out_shape
    k = weight.shape[-1]
    src, dst, wt = [], [], []
    yo, xo = np.arange(ho), np.arange(wo)
    co, ci = np.arange(c_out), np.arange(c_in)
    for ky in range(k):
        yi = yo * stride - pad + ky
        vy = (yi >= 0) & (yi < h)
        for kx in range(k):
            xi = xo * stride - pad + kx
            vx = (xi >= 0) & (xi < w)
            oy, ox = np.meshgrid(yo[vy], xo[vx], indexing="ij")
            iy, ix = np.meshgrid(yi[vy], xi[vx], indexing="ij")
            o_pos = (oy * wo + ox).ravel()
            i_pos = (iy * w + ix).ravel()
            # (C_out, C_in, positions)
            d = co[:, None, None] * ho * wo + o_pos[None, None, :]
            s = ci[None, :, None] * h * w + i_pos[None, None, :]
            d, s = np.broadcast_arrays(d, s)
            src.append(s.ravel())
            dst.append(d.ravel())
            wt.append(np.broadcast_to(weight[:, :, ky, kx][:, :, None], d.shape).ravel())
    return (np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64),
            np.concatenate(wt).astype(np.float64))


def can_saturate(net: StmNetwork, layer: int) -> bool:
    """Whether layer ``layer`` (1-based, spike-fed) could reach Lava's positive voltage
    clip: its steady-state bound ``fan-in max|w| 64 * 4096 / dv`` >= 2^23 - 1 (SANA-FE
    does not clip, so spikes could differ)."""
    spec = net.layers[layer - 1]
    fan_in = int(np.prod(spec.weight.shape[1:]))
    wmax = int(np.clip(spec.weight, 0, None).sum(axis=(1, 2, 3)).max(initial=0))
    drive = min(fan_in * int(np.abs(spec.weight).max(initial=0)), wmax) * UNITS
    return spec.dv == 0 or drive * 4096 / spec.dv >= V_MAX


@dataclass(frozen=True)
class Tiling:
    """Neurons of one layer on cores: ``channels`` x ``rows`` x ``cols`` per core."""

    channels: int
    rows: int
    cols: int

    def cores(self, shape: tuple[int, int, int]) -> np.ndarray:
        """(C*H*W,) the layer-local core index of every neuron (flat C, H, W order)."""
        c, h, w = shape
        cc, yy, xx = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
        by, bx = math.ceil(h / self.rows), math.ceil(w / self.cols)
        return ((cc // self.channels) * by + yy // self.rows) * bx + (xx // self.cols)

    def count(self, shape: tuple[int, int, int]) -> int:
        c, h, w = shape
        return (math.ceil(c / self.channels) * math.ceil(h / self.rows)
                * math.ceil(w / self.cols))


def default_tiling(shape: tuple[int, int, int], per_core: int = NEURONS_PER_CORE) -> Tiling:
    """All channels of a square-ish spatial patch per core (spatial tiles beat
    channel-major placement, ``shared/notes/chip.md``)."""
    c, h, w = shape
    side = max(1, int(math.sqrt(per_core // c))) if c <= per_core else 1
    if c > per_core:
        return Tiling(per_core, 1, 1)
    rows, cols = min(h, side), min(w, max(1, (per_core // c) // min(h, side)))
    return Tiling(c, rows, cols)


def tilings_from_mapping(mapping: dict, branch: str, layers: int) -> list[Tiling]:
    """The (channels x rows x columns) core tiles of ``branch``'s layers from a
    ``mapping.json`` dict (deploy/hardware/neurocores/mapping.py: layer names
    ``<branch>/conv<k>``)."""
    by = {lm["name"]: lm for lm in mapping["layers"]}
    out = []
    for k in range(1, layers + 1):
        lm = by.get(f"{branch}/conv{k}")
        if lm is None or lm.get("cores") is None:
            raise ValueError(f"mapping.json has no core partition for {branch}/conv{k} "
                             f"(layers: {', '.join(by)})")
        out.append(Tiling(lm["channels_per_core"], lm["rows_per_core"], lm["cols_per_core"]))
    return out


def stock_loihi() -> loihi_arch.StockLoihi:
    """SANA-FE's Loihi file as the installed package ships it (``sanafe/examples/
    loihi.yaml``), parsed; :class:`MissingExtra` when SANA-FE is missing or its file
    has another layout (the message names the file and the version this reads)."""
    require_sanafe()
    return _read_stock()


@functools.cache
def _read_stock() -> loihi_arch.StockLoihi:
    from importlib.resources import files

    path = files("sanafe.examples") / "loihi.yaml"
    try:
        return loihi_arch.parse(path.read_text(), str(path))
    except (OSError, loihi_arch.LayoutError) as exc:
        raise MissingExtra(f"SANA-FE's Loihi architecture file cannot be used: {exc}") from exc


def load_arch(plain_cores: int, input_cores: int):
    """A SANA-FE Architecture generated from :func:`stock_loihi` with room for
    ``plain_cores`` simulated-layer cores and ``input_cores`` input cores."""
    sf = require_sanafe()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "loihi_hybrid.yaml"
        path.write_text(loihi_arch.generate(stock_loihi(), plain_cores, input_cores))
        return sf.load_arch(str(path))


@dataclass
class SequenceResult:
    """One sequence: per simulated step (T + L - 1 of them)."""

    per_step: dict  # stat -> list per step (synapse/dendrite/soma/network/total energy, ...)
    spikes: list[np.ndarray]  # per simulated layer: (T,) spikes aligned to the input step
    spike_maps: list[np.ndarray] | None  # per simulated layer (C, H, W, T), if recorded
    messages: list[np.ndarray]  # per layer incl. the replayed input: (T,) core messages
    # per simulated step: messages crossing each boundary between the mesh's chips
    # (steps, chips - 1), and chip-to-chip hops summed over messages (steps,)
    boundary_messages: np.ndarray | None = None
    chip_hops: np.ndarray | None = None


@dataclass
class BranchSim:
    """A loaded SANA-FE chip for one STM branch (layers 2..L), reused per sequence."""

    net: StmNetwork
    tilings: list[Tiling]  # layers 2..L
    chip: object = None
    cores_used: int = 0  # simulated-layer cores
    input_cores: int = 0
    arch_tiles: int = 0
    saturation_risk: list[int] = field(default_factory=list)  # layers that could clip
    chips: int = 1  # Loihi chips the simulated mesh spans (stock mesh = one chip)
    _chip_hops: list[np.ndarray] = field(default_factory=list)  # per layer, per source neuron
    _crossings: list[np.ndarray] = field(default_factory=list)  # (neurons, chips - 1) each
    _fanout_cores: list[np.ndarray] = field(default_factory=list)
    _inputs: object = None
    _last_active: np.ndarray | None = None


def build(net: StmNetwork, tilings: list[Tiling] | None = None) -> BranchSim:
    """Build and load the SANA-FE network of layers 2..L of ``net``. ``tilings``: one per
    layer (1..L, as in mapping.json; the first is ignored), default spatial tiles."""
    sf = require_sanafe()
    shapes = [tuple(s.shape) for s in net.layers]
    if tilings is None:
        tilings = [default_tiling(s) for s in shapes]
    if len(tilings) != len(shapes):
        raise ValueError(f"{len(tilings)} tilings for {len(shapes)} layers")
    sim = BranchSim(net, list(tilings[1:]))
    n_in = int(np.prod(shapes[0]))
    inputs_per_core = stock_loihi().inputs_per_core
    sim.input_cores = math.ceil(n_in / inputs_per_core)
    local = [t.cores(s) for t, s in zip(tilings[1:], shapes[1:])]
    offsets = np.cumsum([0] + [t.count(s) for t, s in zip(tilings[1:], shapes[1:])])
    sim.cores_used = int(offsets[-1])
    for t, s in zip(tilings[1:], shapes[1:]):
        per = int(np.bincount(t.cores(s).ravel()).max())
        assert per <= NEURONS_PER_CORE, (
            f"tiling {t} puts {per} neurons on a core, a Loihi core holds {NEURONS_PER_CORE}")
    arch = load_arch(sim.cores_used, sim.input_cores)
    # cores chip by chip (a chip = the stock mesh's rows; SANA-FE numbers tiles column by
    # column, tile id -> x = id // height, y = id % height): consecutive cores of a layer
    # share a chip where they can
    st = stock_loihi()
    height = len(arch.tiles) // st.width
    slots = [(t.id % height // st.height, k, c) for k, (t, c) in
             enumerate((t, c) for t in arch.tiles for c in t.cores)]
    slots.sort(key=lambda v: v[:2])
    plain = [c for _, _, c in slots if c.name.startswith(loihi_arch.PLAIN_CORE + "[")]
    inputs = [c for _, _, c in slots if c.name.startswith(loihi_arch.INPUT_CORE + "[")]
    plain_chip = np.array([ch for ch, _, c in slots
                           if c.name.startswith(loihi_arch.PLAIN_CORE + "[")], np.int64)
    input_chip = np.array([ch for ch, _, c in slots
                           if c.name.startswith(loihi_arch.INPUT_CORE + "[")], np.int64)
    sim.chips = math.ceil(height / st.height)
    assert len(plain) >= sim.cores_used and len(inputs) >= sim.input_cores, (
        f"the generated architecture has {len(plain)} + {len(inputs)} input cores, the "
        f"network needs {sim.cores_used} + {sim.input_cores}")
    sim.arch_tiles = len(arch.tiles)
    snet = sf.Network()
    g_in = snet.create_neuron_group("in", n_in, model_attributes={}, log_spikes=True,
                                    soma_hw_name="loihi_inputs[0]")
    groups = [g_in]
    for k, spec in enumerate(net.layers[1:], start=2):
        if can_saturate(net, k):
            sim.saturation_risk.append(k)
        attrs = {"threshold": float(spec.vth), "reset_mode": "soft",
                 "leak_decay": (4096 - spec.dv) / 4096, "input_decay": 0.0,
                 "reverse_threshold": -V_MAX / UNITS, "reverse_reset_mode": "saturate"}
        groups.append(snet.create_neuron_group(
            f"layer{k}", int(np.prod(spec.shape)), model_attributes=attrs, log_spikes=True,
            soma_hw_name="loihi_lif", default_synapse_hw_name="loihi_conv_synapse"))
    for i in range(n_in):  # one input unit per input neuron (SANA-FE's input model)
        g_in[i].set_attributes(soma_hw_name=f"loihi_inputs[{i % inputs_per_core}]")
        g_in[i].map_to_core(inputs[i // inputs_per_core])
    in_shape = shapes[0]
    core_of = [np.arange(n_in) // inputs_per_core]  # global core ids: inputs as -1 - id
    for j, (spec, g) in enumerate(zip(net.layers[1:], groups[1:])):
        cores = (local[j].ravel() + offsets[j]).astype(np.int64)
        for i, c in enumerate(cores):
            g[i].map_to_core(plain[int(c)])
        core_of.append(cores)
        src, dst, w = edges(in_shape, spec.weight, spec.stride, spec.padding, tuple(spec.shape))
        groups[j].connect_neurons_sparse(g, {"w": w.tolist()},
                                         list(zip(src.tolist(), dst.tolist())))
        # messages: a spiking neuron sends one per distinct destination core
        key = np.unique(src * (sim.cores_used + 1) + cores[dst])
        n_src = int(np.prod(in_shape))
        sim._fanout_cores.append(np.bincount(key // (sim.cores_used + 1), minlength=n_src))
        # chip-to-chip: each message crosses the boundaries between its two chips
        s_msg, d_core = key // (sim.cores_used + 1), key % (sim.cores_used + 1)
        c_src = (input_chip[core_of[0][s_msg]] if j == 0
                 else plain_chip[core_of[j][s_msg]])
        c_dst = plain_chip[d_core]
        lo, hi = np.minimum(c_src, c_dst), np.maximum(c_src, c_dst)
        sim._chip_hops.append(np.bincount(s_msg, weights=hi - lo, minlength=n_src)
                              .astype(np.int64))
        cross = np.zeros((n_src, max(sim.chips - 1, 0)), np.int64)
        for b in range(sim.chips - 1):
            np.add.at(cross[:, b], s_msg[(lo <= b) & (b < hi)], 1)
        sim._crossings.append(cross)
        in_shape = tuple(spec.shape)
    sim._fanout_cores.append(np.zeros(int(np.prod(in_shape)), np.int64))  # last: bridge
    sim._chip_hops.append(np.zeros(int(np.prod(in_shape)), np.int64))
    sim._crossings.append(np.zeros((int(np.prod(in_shape)), max(sim.chips - 1, 0)), np.int64))
    chip = sf.SpikingChip(arch)
    chip.load(snet)
    sim.chip = chip
    sim._inputs = chip.mapped_neuron_groups["in"]
    sim._last_active = np.zeros(0, np.int64)
    return sim


def simulate(sim: BranchSim, layer1_spikes: np.ndarray, record: bool = False) -> SequenceResult:
    """One sequence: ``layer1_spikes`` (C1, H1, W1, T) 0/1, the first layer's output
    spikes (from Lava), replayed; returns per-step stats and per-layer spikes aligned to
    the input step (layer k's step t is SANA-FE step t + k - 1)."""
    net = sim.net
    c1, h1, w1, T = layer1_spikes.shape
    if (c1, h1, w1) != tuple(net.layers[0].shape):
        raise ValueError(f"layer-1 spikes {layer1_spikes.shape[:3]}, the network's layer 1 is "
        f"{tuple(net.layers[0].shape)}")
    depth = len(net.layers) - 1  # simulated layers
    steps = T + depth
    flat = layer1_spikes.reshape(-1, T).astype(bool)
    active = np.flatnonzero(flat.any(1))
    sim.chip.reset()
    silent = [False] * steps
    for i in np.setdiff1d(sim._last_active, active):  # clear last sequence's trains
        sim._inputs[int(i)].set_attributes(model_attributes={"spikes": silent})
    for i in active:
        train = flat[i].tolist() + [False] * depth
        sim._inputs[int(i)].set_attributes(model_attributes={"spikes": train})
    sim._last_active = active
    with contextlib.redirect_stdout(io.StringIO()):  # its "Executed steps" line
        r = sim.chip.sim(steps, perf_trace=True, spike_trace=True)
    per_step = {k: list(r["perf_trace"][k]) for k in STATS}
    shapes = [tuple(s.shape) for s in net.layers]
    counts = [np.zeros((int(np.prod(s)), T), np.int8) for s in shapes[1:]]
    for step, fired in enumerate(r["spike_trace"]):
        for a in fired:
            if a.group_name == "in":
                continue
            k = int(a.group_name[5:])  # 'layer<k>'
            t = step - (k - 1)
            if 0 <= t < T:
                counts[k - 2][a.neuron_offset, t] = 1
    maps = [c.reshape(*s, T) for c, s in zip(counts, shapes[1:])]
    spikes = [m.reshape(-1, T).sum(0) for m in maps]
    msgs = [(flat.astype(np.int64) * sim._fanout_cores[0][:, None]).sum(0)]
    msgs += [(c.astype(np.int64) * f[:, None]).sum(0)
             for c, f in zip(counts, sim._fanout_cores[1:])]
    # chip traffic per simulated step: layer j's (0: the input) spikes at input-aligned
    # step t leave at SANA-FE step t + j
    trains = [flat.astype(np.int64)] + [c.astype(np.int64) for c in counts]
    bmsg = np.zeros((steps, max(sim.chips - 1, 0)), np.int64)
    hops = np.zeros(steps, np.int64)
    for j, (tr, h, x) in enumerate(zip(trains, sim._chip_hops, sim._crossings)):
        hops[j:j + T] += (tr * h[:, None]).sum(0)
        bmsg[j:j + T] += tr.T @ x
    return SequenceResult(per_step, spikes, maps if record else None, msgs, bmsg, hops)
