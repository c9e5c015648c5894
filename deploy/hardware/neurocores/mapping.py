"""Resource mapping of the spiking partition onto neurocores under a chip's limits.

Counts per conv-LIF layer of an exported STM (:class:`neuro.export.StmNetwork`):

- ``neurons`` = C * H' * W' (one compartment each);
- ``synapses``: connections that exist (padding taps excluded), exactly
  ``C_out * C_in * sum_y ry(y) * sum_x rx(x)`` with ``ry(y)`` the kernel rows of output
  row ``y`` that land inside the input;
- fan-in per neuron ``C_in * ry * rx`` (max and mean) and fan-out per neuron of this
  layer's neurons into the next layer (0 for the last layer: its potentials go to the
  bridge, not to on-chip synapses);
- neuron state: ``u`` and ``v`` of Lava's fixed-point LIF, 24 bit each.

How a core stores conv weights. With weight sharing (both Loihi presets: population
connectivity / convolutional compression) a core stores *one copy of the kernel slice
of the output channels it holds* (``channels * C_in * k * k`` weights) and indexes it
for every neuron; a layer's ``weights_stored`` is the sum over its cores (the kernel is
replicated once per spatial band). Without sharing (``shared=False``, a compiler that
expands the convolution) every synapse of the core's neurons is stored. Synaptic memory
= stored weights x the exported weight precision (8-bit mantissas); index and routing
overhead are not counted, so memory is a lower bound (nengo-loihi, for one, adds index
bits per weight and a 10-bit header per run of up to 64 synapses, in 64-bit words).

Partition (ours; Lava's closed compiler may choose another): a core holds one layer's
neurons in a tile of ``channels_per_core`` output channels x ``rows_per_core`` rows x
``cols_per_core`` columns. For each layer (last first, since fan-out depends on the next
layer's cores) we take the tiling with the fewest cores whose worst core meets every
per-core limit: neurons, memory (synapses, plus state where the chip keeps it there),
fan-in axons (distinct source neurons) and fan-out axons (neuron -> destination-core
edges). The ``binding`` constraint is the one the worst core uses most of;
``cores_lower_bound`` is what no partition can beat. One layer per core; the two
branches and each sequence run side by side get cores of their own.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from deploy.presets import ChipPreset
from neuro.export import StmNetwork

STATE_BITS = 24 + 24  # u and v of Lava's fixed-point LIF (neuro/quant.py V_BITS)
WEIGHT_BITS = 8  # exported weight mantissas (neuro/quant.py W_BITS)
FORMAT, VERSION = "hybrid-mapping", 1  # of Mapping.to_dict() / mapping.json
CONSTRAINTS = ("neurons", "memory", "fan_in_axons", "fan_out_axons")


def taps(n_in: int, n_out: int, k: int, stride: int, pad: int) -> np.ndarray:
    """Per output position along one axis: kernel taps landing inside the input."""
    start = np.arange(n_out) * stride - pad  # first input index of each output
    return np.maximum(np.minimum(start + k, n_in) - np.maximum(start, 0), 0)


@dataclass
class ConvGeometry:
    """One conv layer's shape: input (C_in, H, W) -> output (C, H', W')."""

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    k: int
    stride: int
    pad: int

    def taps(self, axis: int) -> np.ndarray:  # axis 1: rows (H',), 2: columns (W',)
        return taps(self.in_shape[axis], self.out_shape[axis], self.k, self.stride, self.pad)

    def span(self, axis: int, o0: int, o1: int) -> int:
        """Input positions along ``axis`` read by outputs [o0, o1)."""
        lo = max(o0 * self.stride - self.pad, 0)
        return max(min((o1 - 1) * self.stride - self.pad + self.k, self.in_shape[axis]) - lo, 0)

    @property
    def synapses(self) -> int:
        c_out, c_in = self.out_shape[0], self.in_shape[0]
        return int(c_out * c_in * self.taps(1).sum() * self.taps(2).sum())


@dataclass
class Partition:
    channels_per_core: int
    rows_per_core: int
    cols_per_core: int
    cores: int
    worst: dict  # per constraint: the worst core's use
    utilisation: dict  # per constraint: worst use / limit (None: limit not published)

    @property
    def binding(self) -> str:
        known = {k: v for k, v in self.utilisation.items() if v is not None}
        return max(known, key=known.get)

    def tiles(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """(channel groups, row bands, column bands) over an output (C, H, W)."""
        return tuple(math.ceil(n / t) for n, t in zip(
            shape, (self.channels_per_core, self.rows_per_core, self.cols_per_core)))


def _tiles(g: ConvGeometry, axis: int, t: int, readers: np.ndarray) -> np.ndarray:
    """Per tile of ``t`` outputs along ``axis``: (outputs, input span, kernel taps,
    next-layer readers), shape (tiles, 4)."""
    n, tp = g.out_shape[axis], g.taps(axis)
    rows = []
    for o0 in range(0, n, t):
        o1 = min(n, o0 + t)
        rows.append((o1 - o0, g.span(axis, o0, o1), tp[o0:o1].sum(), readers[o0:o1].sum()))
    return np.array(rows, np.int64)


def _readers(n: int, ng: ConvGeometry, axis: int, t: int) -> np.ndarray:
    """Per position along ``axis`` of a layer of size ``n``: the next layer's tiles (of
    ``t`` outputs) whose kernels read it."""
    out = np.zeros(n, np.int64)
    for o0 in range(0, ng.out_shape[axis], t):
        o1 = min(ng.out_shape[axis], o0 + t)
        lo = max(o0 * ng.stride - ng.pad, 0)
        out[lo:max(min((o1 - 1) * ng.stride - ng.pad + ng.k, n), lo)] += 1
    return out


@dataclass
class LayerMap:
    name: str  # "<branch>/conv<k>"
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: int
    stride: int
    neurons: int
    synapses: int
    fan_in_max: int
    fan_in_mean: float
    fan_out_max: int
    fan_out_mean: float
    kernel_weights: int  # C_out * C_in * k * k (one copy)
    weights_stored: int  # over all the layer's cores (see the module docstring)
    weight_bits: int
    synaptic_memory_bits: int
    synaptic_memory_bits_unshared: int  # if every synapse were stored
    state_bits: int  # neurons * (u + v bits)
    cores: int | None  # None: no partition meets the limits
    cores_lower_bound: int  # max over limits of ceil(layer total / per-core limit)
    channels_per_core: int | None
    rows_per_core: int | None
    cols_per_core: int | None
    binding: str | None
    worst_core: dict = field(default_factory=dict)
    utilisation: dict = field(default_factory=dict)
    problem: str | None = None


@dataclass
class Mapping:
    chip: str
    chip_title: str
    chip_source: str
    shared_weights: bool
    branches: dict  # branch name -> input (C, H, W)
    layers: list[LayerMap]
    cores_used: int  # over both branches (one sequence)
    cores_total: int
    fits: bool
    sequences_per_chip: int  # copies of the whole spiking partition side by side
    neurons: int
    synapses: int
    synaptic_memory_bits: int
    state_bits: int
    unchecked: list[str]  # limits the preset does not publish
    notes: list[str]  # what the counts leave out or the chip cannot run as exported
    problems: list[str]

    def to_dict(self) -> dict:
        """JSON-ready, stamped with this format's name and version (``mapping.json``)."""
        return {"format": FORMAT, "version": VERSION, **asdict(self)}


def _geometries(net: StmNetwork) -> list[ConvGeometry]:
    shape, out = net.input_shape, []
    for spec in net.layers:
        k = spec.weight.shape[-1]
        if spec.weight.shape[1] != shape[0]:
            raise ValueError(f"layer weight takes {spec.weight.shape[1]} channels, its input "
                             f"has {shape[0]}")
        out.append(ConvGeometry(tuple(shape), tuple(spec.shape), k, spec.stride, spec.padding))
        shape = spec.shape
    return out


def _limits(chip: ChipPreset) -> dict:
    return {"neurons": chip.neurons_per_core, "memory": chip.memory_bits_per_core,
            "fan_in_axons": chip.fan_in_axons_per_core,
            "fan_out_axons": chip.fan_out_axons_per_core}


def _partition(g: ConvGeometry, nxt: tuple[ConvGeometry, Partition] | None,
               chip: ChipPreset, shared: bool, bits: int) -> Partition | None:
    """The fewest-core partition of layer ``g`` into (channels x rows x columns) tiles
    whose worst core meets ``chip``'s limits (ties: lowest worst utilisation, then wider
    tiles); ``nxt``: the next layer's geometry and partition (for fan-out), None for the
    last layer. Every quantity but memory-with-state is a product of per-axis terms, so
    the worst core is the product of per-axis maxima."""
    c, h, w = g.out_shape
    c_in = g.in_shape[0]
    limits = _limits(chip)
    lim = {k: math.inf if v is None else v for k, v in limits.items()}
    if nxt is None:
        ry, rx, ngroups = np.zeros(h, np.int64), np.zeros(w, np.int64), 0
    else:
        ng, npart = nxt
        ry, rx = _readers(h, ng, 1, npart.rows_per_core), _readers(w, ng, 2, npart.cols_per_core)
        ngroups = npart.tiles(ng.out_shape)[0]
    ys = {r: _tiles(g, 1, r, ry) for r in range(1, h + 1)}
    xs = {q: _tiles(g, 2, q, rx) for q in range(1, w + 1)}
    ymax = {r: t.max(axis=0) for r, t in ys.items()}
    xmax = {q: t.max(axis=0) for q, t in xs.items()}
    kernel_bits = c_in * g.k * g.k * bits
    state = STATE_BITS if chip.memory_holds_state else 0
    best, best_key = None, None
    for cg in range(1, c + 1):
        groups = math.ceil(c / cg)
        for r in range(h, 0, -1):
            by = len(ys[r])
            if best is not None and groups * by > best.cores:
                break  # fewer rows per core only adds cores
            q_top = min(w, chip.neurons_per_core // (cg * int(ymax[r][0])))  # neurons fit
            for q in range(q_top, 0, -1):
                n = groups * by * len(xs[q])
                if best is not None and n > best.cores:
                    break
                (yn, yspan, ytap, yrd), (xn, xspan, xtap, xrd) = ymax[r], xmax[q]
                worst = {"neurons": cg * yn * xn, "fan_in_axons": c_in * yspan * xspan,
                         "fan_out_axons": cg * ngroups * yrd * xrd}
                if any(worst[k] > lim[k] for k in worst):
                    continue
                if shared:
                    mem = cg * kernel_bits + state * cg * yn * xn
                elif cg * c_in * bits * ytap * xtap > lim["memory"]:
                    continue  # the synapses alone overflow the worst core
                else:  # a sum of two products: take the max over the tiles exactly
                    yt, xt = ys[r], xs[q]
                    mem = int((cg * c_in * bits * np.outer(yt[:, 2], xt[:, 2])
                               + state * cg * np.outer(yt[:, 0], xt[:, 0])).max())
                worst["memory"] = int(mem)
                if mem > lim["memory"]:
                    continue
                worst = {k: int(worst[k]) for k in CONSTRAINTS}
                util = {k: None if limits[k] is None else worst[k] / limits[k]
                        for k in CONSTRAINTS}
                key = (n, max(v for v in util.values() if v is not None), -q)
                if best_key is None or key < best_key:
                    best, best_key = Partition(cg, r, q, n, worst, util), key
    return best


def _smallest_core_violation(g: ConvGeometry, chip: ChipPreset, shared: bool,
                             bits: int) -> str:
    """Why not even one neuron fits on a core (for the error message)."""
    c_in = g.in_shape[0]
    stored = c_in * g.k * g.k if shared else int(c_in * g.taps(1).max() * g.taps(2).max())
    use = {"memory": stored * bits + (STATE_BITS if chip.memory_holds_state else 0),
           "fan_in_axons": c_in * min(g.k, g.in_shape[1]) * min(g.k, g.in_shape[2])}
    over = [f"{k} {use[k]} > {lim}" for k, lim in _limits(chip).items()
            if k in use and lim is not None and use[k] > lim]
    return ("one neuron exceeds a core: " + ", ".join(over)) if over else (
        "no partition meets the fan-out limit")


def _lower_bound(neurons: int, weights: int, bits: int, chip: ChipPreset) -> int:
    """Cores no partition can beat: by neurons, and by memory (one kernel copy, or every
    synapse, plus state where the chip keeps it in the same memory)."""
    mem = weights * bits + (neurons * STATE_BITS if chip.memory_holds_state else 0)
    return max(math.ceil(neurons / chip.neurons_per_core),
               math.ceil(mem / chip.memory_bits_per_core))


def map_layers(branch: str, net: StmNetwork, chip: ChipPreset,
               shared: bool = True) -> list[LayerMap]:
    """Per-layer counts and core partition of one STM branch."""
    bits = WEIGHT_BITS
    for i, spec in enumerate(net.layers):
        m = np.abs(spec.weight).max(initial=0)
        if m > 1 << (bits - 1):
            raise ValueError(f"{branch} layer {i + 1}: weights exceed {bits} bits")
    geos = _geometries(net)
    parts: list[Partition | None] = [None] * len(geos)
    nxt = None
    for i in range(len(geos) - 1, -1, -1):
        parts[i] = _partition(geos[i], nxt, chip, shared, bits)
        nxt = None if parts[i] is None else (geos[i], parts[i])
    out = []
    for i, (g, p) in enumerate(zip(geos, parts)):
        c, h, w = g.out_shape
        neurons = c * h * w
        fan_in = g.in_shape[0] * np.outer(g.taps(1), g.taps(2))
        if i + 1 < len(geos):
            ng = geos[i + 1]
            fan_out = ng.out_shape[0] * np.outer(_readers(h, ng, 1, 1), _readers(w, ng, 2, 1))
        else:
            fan_out = np.zeros((h, w), np.int64)
        kernel = c * g.in_shape[0] * g.k * g.k
        if p is None:
            stored, problem = 0, _smallest_core_violation(g, chip, shared, bits)
        else:
            _, by, bx = p.tiles(g.out_shape)
            stored = kernel * by * bx if shared else g.synapses
            problem = None
        if bits > chip.max_weight_bits:
            problem = (f"weights have {bits} bits, {chip.title} stores at most "
                       f"{chip.max_weight_bits}")
        out.append(LayerMap(
            name=f"{branch}/conv{i + 1}", in_shape=g.in_shape, out_shape=g.out_shape,
            kernel=g.k, stride=g.stride, neurons=neurons, synapses=g.synapses,
            fan_in_max=int(fan_in.max()), fan_in_mean=g.synapses / neurons,
            fan_out_max=int(fan_out.max()), fan_out_mean=float(c * fan_out.sum() / neurons),
            kernel_weights=kernel, weights_stored=stored, weight_bits=bits,
            synaptic_memory_bits=stored * bits, synaptic_memory_bits_unshared=g.synapses * bits,
            state_bits=neurons * STATE_BITS,
            cores=None if p is None else p.cores,
            cores_lower_bound=_lower_bound(neurons, kernel if shared else g.synapses, bits,
                                           chip),
            channels_per_core=None if p is None else p.channels_per_core,
            rows_per_core=None if p is None else p.rows_per_core,
            cols_per_core=None if p is None else p.cols_per_core,
            binding=None if p is None else p.binding,
            worst_core={} if p is None else p.worst,
            utilisation={} if p is None else p.utilisation, problem=problem))
    return out


MAX_CHIPS = 128  # the largest network mapped: this many chips' neurons (one chip's cores
# are what is checked; the bound keeps an absurd --size from exhausting the host)


def map_network(nets: dict[str, StmNetwork], chip: ChipPreset, shared: bool = True) -> Mapping:
    """Map every STM branch (``{"mv": net, "r": net}``) onto one ``chip``."""
    if not nets:
        raise ValueError("map_network needs at least one STM network")
    neurons = sum(math.prod(spec.shape) for net in nets.values() for spec in net.layers)
    most = MAX_CHIPS * chip.cores * chip.neurons_per_core
    if neurons > most:  # a map --size 100000x100000 ran 55 s, then asked for 18.6 GiB
        raise ValueError(f"{neurons:,} neurons: more than {MAX_CHIPS} {chip.title} chips "
                         f"hold ({most:,}); map a smaller input size")
    if shared and not chip.conv_weight_sharing:
        shared = False  # the chip cannot share: count what it must store
    layers = [lm for name, net in nets.items() for lm in map_layers(name, net, chip, shared)]
    problems = [f"{lm.name}: {lm.problem}" for lm in layers if lm.problem]
    used = sum(lm.cores or 0 for lm in layers)
    fits = not problems and used <= chip.cores
    if used > chip.cores:
        problems.append(f"{used} cores needed, {chip.title} has {chip.cores}")
    unchecked = [k for k, v in _limits(chip).items() if v is None]
    notes = ["each branch's last layer is read out as membrane potentials (the bridge), "
             "not spikes: the host reads those cores' voltages; not counted here"]
    if not chip.graded_spikes:
        notes.append(f"{chip.title} has binary spikes only: conv1 reads graded "
                     f"{next(iter(nets.values())).in_bits}-bit input messages, which it "
                     "cannot receive as they are (encode them as spikes first)")
    return Mapping(
        chip=chip.name, chip_title=chip.title, chip_source=chip.source, shared_weights=shared,
        branches={name: tuple(net.input_shape) for name, net in nets.items()},
        layers=layers, cores_used=used, cores_total=chip.cores, fits=fits,
        sequences_per_chip=chip.cores // used if fits and used else 0,
        neurons=sum(lm.neurons for lm in layers), synapses=sum(lm.synapses for lm in layers),
        synaptic_memory_bits=sum(lm.synaptic_memory_bits for lm in layers),
        state_bits=sum(lm.state_bits for lm in layers), unchecked=unchecked, notes=notes,
        problems=problems)
