"""Roofline estimate of the dense partition on an accelerator, layer by layer.

Layers come from one forward pass of ``ann.model.DenseModel`` on the meta device (nothing
is allocated or computed) under torch's ``FlopCounterMode``: a *layer* is every module
that does multiply-accumulates of its own (its MACs minus those of its called children:
a Linear, a patch embedding's matmul, an attention module's two matmuls), with

- ``macs``: FLOPs / 2 of its own operations (equal, summed, to ``ann.counting``'s rows);
- ``weight_values``: the parameters it reads (its own, plus those of children it uses
  without calling them, e.g. a patch embedding's conv weight);
- ``activation_values``: the values of its inputs and outputs, summed over its calls.

Per layer, at a precision of ``b`` bytes a value (one video, batch 1)::

    time   = max(macs / (achieved fraction x peak MAC rate),
                 b * (weights + activations) / memory bandwidth) + launch floor
    energy = board power x time            (the accelerator preset; an upper bound)
             macs x mac_j                  (an energy preset, when given)

plus, when the engine runs more operations than the MAC-doing layers (norms, softmax,
activations, reshapes: ``launches`` = the nodes of the optimised ONNX graph), one launch
floor for each of them. The launch floor and the achieved fraction come from the preset,
with their source (measured on this host for ``host-cpu``; secondary typical figures for
the GPUs). ``ideal_s``: the same at the peak rate and no launch cost, the estimate's lower
bound. An estimate, labelled so; a measured time belongs beside it
(``benchmarks/chip_dense.py``; ``host-cpu`` measures one in the report itself).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ann.config import DenseConfig
from deploy.hardware.targets import BYTES, AcceleratorPreset
from deploy.presets import EnergyPreset


@dataclass(frozen=True)
class DenseLayer:
    name: str  # module path in DenseModel ('encoder.blocks.0.attn.qkv'); '.matmul': the
    # module's own MACs beside its children's (attention's Q K^T and A V)
    macs: int  # its own MACs per video
    weight_values: int  # parameters it reads
    activation_values: int  # inputs + outputs, summed over its calls
    fan_in: int = 0  # inputs one output reads (weight shape[1:] product); 0: no weights
    outputs: int = 0  # output features / channels (weight shape[0]); 0: no weights


def _numel(x) -> int:
    import torch

    if isinstance(x, torch.Tensor):
        return x.numel()
    if isinstance(x, (tuple, list)):
        return sum(_numel(v) for v in x)
    if isinstance(x, dict):
        return sum(_numel(v) for v in x.values())
    return 0


def dense_layers(cfg: DenseConfig) -> list[DenseLayer]:
    """The MAC-doing layers of one video's forward pass of ``DenseModel(cfg)``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ann.model import DenseModel

    with torch.device("meta"):
        model = DenseModel(cfg).eval()
        args = {m: torch.empty(1, cfg.segments, *cfg.in_shape(m)) for m in cfg.modalities}
    acts: dict[str, int] = {}
    names = {mod: n for n, mod in model.named_modules()}

    def hook(mod, inputs, output):
        n = names[mod]
        acts[n] = acts.get(n, 0) + _numel(inputs) + _numel(output)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with FlopCounterMode(display=False) as fc:  # grad on: its module tracker needs it
            model(args.get("i"), args.get("mv"), args.get("r"))
    finally:
        for h in handles:
            h.remove()
    root = type(model).__name__
    totals = {}
    for key, ops in fc.get_flop_counts().items():
        if key == root or key.startswith(root + "."):
            totals[key[len(root) + 1:]] = sum(ops.values()) // 2  # '' is the model itself
    modules = dict(model.named_modules())
    out = []
    for name, total in totals.items():
        below = [k for k in totals if k != name and (name == "" or k.startswith(name + "."))]
        nearest = [k for k in below if not any(k != j and k.startswith(j + ".") for j in below)]
        own = total - sum(totals[k] for k in nearest)
        if own <= 0:
            continue
        mod = modules[name]
        called = [c for c in acts if c != name and (name == "" or c.startswith(name + "."))]
        called_top = [c for c in called if not any(c != j and c.startswith(j + ".")
                                                   for j in called)]
        inside = {id(p) for c in called_top for p in modules[c].parameters()}
        own_params = [p for p in mod.parameters() if id(p) not in inside]
        weight = max((p for p in own_params if p.ndim >= 2), key=lambda p: p.numel(),
                     default=None)
        label = (name or root) + (".matmul" if nearest else "")  # e.g. attention's Q K^T, A V
        out.append(DenseLayer(label, int(own), sum(p.numel() for p in own_params),
                              int(acts.get(name, 0)),
                              0 if weight is None else int(weight[0].numel()),
                              0 if weight is None else int(weight.shape[0])))
    return out


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    macs: int
    bytes: int  # weights + activations at the precision
    compute_s: float  # macs / peak MAC rate
    memory_s: float  # bytes / bandwidth
    time_s: float  # max of the two at the achieved rate, + the launch floor
    bound: str  # 'compute', 'memory' or 'launch' (the largest of the three terms)
    ideal_s: float  # max of the two at the peak rate, no launch floor (a lower bound)
    energy_j: float  # board power x time
    energy_j_per_op: float | None  # macs x the energy preset's mac_j, if one is given


def roofline(layers: list[DenseLayer], acc: AcceleratorPreset, precision: str,
             energy: EnergyPreset | None = None,
             launches: int | None = None) -> list[LayerEstimate]:
    """Per-layer roofline time and energy of ``layers`` on ``acc`` at ``precision``;
    ``launches``: operations the engine runs in all (one row 'other ops' holds the
    launch floors of those beyond the layers)."""
    rate, b = acc.macs_per_s(precision), BYTES[precision]
    out = []
    for layer in layers:
        nbytes = b * (layer.weight_values + layer.activation_values)
        c, m = layer.macs / (rate * acc.achieved_fraction), nbytes / acc.memory_bw
        t = max(c, m) + acc.launch_s
        bound = max((c, "compute"), (m, "memory"), (acc.launch_s, "launch"))[1]
        out.append(LayerEstimate(layer.name, layer.macs, nbytes, c, m, t, bound,
                                 max(layer.macs / rate, m), t * acc.board_power_w,
                                 None if energy is None else layer.macs * energy.mac_j))
    extra = max(0, (launches or 0) - len(layers))
    if extra and acc.launch_s:
        t = extra * acc.launch_s
        out.append(LayerEstimate(f"other ops ({extra} launches)", 0, 0, 0.0, 0.0, t, "launch",
                                 0.0, t * acc.board_power_w, None if energy is None else 0.0))
    return out


def summarise(est: list[LayerEstimate], acc: AcceleratorPreset, precision: str) -> dict:
    """The dense stage of the report: totals and the per-layer rows, labelled."""
    per_op = [e.energy_j_per_op for e in est]
    return {"accelerator": acc.name, "title": acc.title, "precision": precision,
            "source": acc.source, "label": "estimated (roofline)",
            "launch_s": acc.launch_s, "achieved_fraction": acc.achieved_fraction,
            "overhead_source": acc.overhead_source,
            "macs": sum(e.macs for e in est), "bytes": sum(e.bytes for e in est),
            "time_s": sum(e.time_s for e in est), "ideal_s": sum(e.ideal_s for e in est),
            "energy_j": sum(e.energy_j for e in est),
            "energy_j_per_op": None if None in per_op else sum(per_op),
            "layers": [asdict(e) for e in est]}
