"""NIR export of the spiking partition (one graph per STM branch), with the ``nir`` package.

Graph per branch: ``input -> conv1 -> lif1 -> conv2 -> lif2 -> conv3 -> lif3 -> output``.

What maps exactly:

- ``Conv2d``: weights ``mantissa * 2**weightExp`` (float32, exact: 8-bit mantissas times
  a power of two), stride, padding, no bias;
- thresholds: ``v_threshold = (vThMant << 6) / vScale`` in float units (exact: a 17-bit
  mantissa times a power of two);
- the leak: NIR's ``LIF`` is ``tau dv/dt = (v_leak - v) + r I``. With ``tau = dt * 4096 /
  vDecay``, ``r = tau / dt`` and ``v_leak = 0``, its forward-Euler step at ``dt`` is
  ``v <- (1 - vDecay / 4096) v + I``: our voltage decay and synaptic input (the current
  is not carried over: ``iDecay = 4096``, so no ``CubaLIF``). A layer without leak
  (``vDecay = 0``) becomes an ``IF`` with ``r = 1``.

What NIR cannot say, carried in node metadata (see :func:`differences`): the subtractive
(soft) reset (NIR neurons reset to ``v_reset``; we write ``v_reset = 0``), the fixed
point (graded 8-bit input messages, 24-bit voltage and synaptic wrap, the truncating
12-bit decay, integer thresholds), Lava's one-step delay per synapse, the per-sequence
state reset, and the readout (the dense partition reads the last layer's membrane
potential after the last step, not its spikes). ``nir.write`` stamps the package version.
"""
from __future__ import annotations

import os
from pathlib import Path

import nir
import numpy as np
import torch

from deploy.atomic import as_one, write_path
from neuro import quant
from neuro.export import FORMAT, VERSION, StmNetwork

DT = 1e-4  # the time step a reader integrates with (snnTorch's and NIR's Lava examples)


def differences(net: StmNetwork) -> list[str]:
    """What a NIR reader of this export runs differently from the Lava / torch STM."""
    out = [
        "reset: our neurons subtract the threshold on a spike (soft reset); NIR neurons "
        "reset to v_reset = 0 (hard reset), so after the first spike of a neuron its "
        "potential and later spikes differ (metadata resetMode = 'soft')",
        "dynamics: NIR neurons are continuous-time; they equal ours only when integrated "
        f"by forward Euler at dt = {DT:g} s (metadata dt); another integrator or dt changes "
        "the leak",
        "fixed point: Lava computes in integers (graded input messages round(x * 2**"
        f"{net.in_frac_bits}) clipped to {net.in_bits} bits, 24-bit synaptic and voltage "
        "wrap, decay sign(v) * ((|v| * (4096 - vDecay)) >> 12) truncating); a float "
        "reader rounds differently, so values near the threshold can flip spikes",
        "timing: Lava's Conv delays each layer by one step (layer k sees frame t at step "
        "t + k); a NIR reader passes spikes through in the same step",
        "state: ours is zeroed at the start of every sequence; reset the reader's state "
        "between sequences yourself",
        "readout: the dense partition reads lif3's membrane potential after the last step "
        "(vScale-scaled), not its spikes; NIR's output node carries spikes",
    ]
    return out


def _neuron(spec, metadata: dict) -> nir.NIRNode:
    shape = spec.shape
    theta = spec.vth * (1 << quant.VTH_SHIFT) / spec.v_scale
    full = np.full(shape, 1.0)
    if spec.dv == 0:
        return nir.IF(r=full.copy(), v_threshold=full * theta, v_reset=0 * full,
                      metadata=metadata)
    tau = DT * quant.DECAY_UNITY / spec.dv
    return nir.LIF(tau=full * tau, r=full * (tau / DT), v_leak=0 * full,
                   v_threshold=full * theta, v_reset=0 * full, metadata=metadata)


def stm_graph(net: StmNetwork, branch: str) -> nir.NIRGraph:
    """The NIR graph of one exported STM branch."""
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(np.array(net.input_shape), metadata={
            "inFracBits": net.in_frac_bits, "inBits": net.in_bits,
            "quantisation": "graded messages round(x * 2**inFracBits), signed inBits"})}
    edges, prev, shape = [], "input", net.input_shape
    for k, spec in enumerate(net.layers, start=1):
        weight = (spec.weight * 2.0 ** spec.weight_exp).astype(np.float32)
        nodes[f"conv{k}"] = nir.Conv2d(
            input_shape=tuple(shape[1:]), weight=weight, stride=(spec.stride,) * 2,
            padding=(spec.padding,) * 2, dilation=(1, 1), groups=1,
            bias=np.zeros(weight.shape[0], np.float32),
            metadata={"weightExp": spec.weight_exp, "weightBits": quant.W_BITS,
                      "synapseDelaySteps": 1})
        nodes[f"lif{k}"] = _neuron(spec, {
            "resetMode": "soft", "vThMant": spec.vth, "vThShift": quant.VTH_SHIFT,
            "vDecay": spec.dv, "iDecay": spec.du + 1, "vScale": spec.v_scale,
            "voltageBits": quant.V_BITS, "dt": DT})
        edges += [(prev, f"conv{k}"), (f"conv{k}", f"lif{k}")]
        prev, shape = f"lif{k}", spec.shape
    nodes["output"] = nir.Output(np.array(shape), metadata={
        "readout": "lif3 membrane potential after the last step (Lava v / vScale)"})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={
        "source": f"{FORMAT} v{VERSION}", "branch": branch, "dt": DT,
        "differences": "\n".join(differences(net))})


def write_nir(nets: dict[str, StmNetwork], out_dir: str | os.PathLike) -> list[Path]:
    """One ``stm_<branch>.nir`` file per STM branch in ``out_dir``, all written as one
    (:func:`deploy.atomic.as_one`: a full disk at the second left the first alone);
    returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with as_one():
        for branch, net in nets.items():
            path = out_dir / f"stm_{branch}.nir"
            graph = stm_graph(net, branch)
            paths.append(write_path(path, lambda tmp, g=graph: nir.write(tmp, g)))
    return paths


def _chain(graph: nir.NIRGraph) -> list[str]:
    nxt = dict(graph.edges)
    if len(nxt) != len(graph.edges):
        raise ValueError("simulate runs chains only (one edge per node)")
    order, node = [], "input"
    while node in nxt:
        node = nxt[node]
        order.append(node)
    return order


def simulate(graph: nir.NIRGraph, x: np.ndarray, soft_reset: bool = False):
    """Run a chain graph as NIR defines it, in float64: forward Euler at the graph's
    ``dt``, no synaptic delay, state zero at the start. ``soft_reset`` subtracts the
    threshold instead of resetting to ``v_reset`` (our neuron, without fixed point).

    x (N, C, H, W, T) -> (per neuron node: spikes (N, C, H, W, T) bool, last neuron's v
    after the last step (N, C, H, W)).
    """
    dt = float(graph.metadata.get("dt", DT))
    order = [n for n in _chain(graph) if n != "output"]
    v = {n: None for n in order}
    spikes: dict[str, list] = {n: [] for n in order if not isinstance(
        graph.nodes[n], nir.Conv2d)}
    for t in range(x.shape[-1]):
        h = torch.from_numpy(np.ascontiguousarray(x[..., t], np.float64))
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Conv2d):
                h = torch.nn.functional.conv2d(
                    h, torch.from_numpy(node.weight.astype(np.float64)),
                    torch.from_numpy(node.bias.astype(np.float64)),
                    stride=tuple(node.stride), padding=tuple(node.padding))
                continue
            thr = torch.from_numpy(node.v_threshold)
            if isinstance(node, nir.LIF):
                beta = torch.from_numpy(1 - dt / node.tau)
                drive = torch.from_numpy(node.r * dt / node.tau) * h
            else:  # IF
                beta, drive = 1.0, torch.from_numpy(node.r) * h
            prev = torch.zeros_like(h) if v[name] is None else v[name]
            vn = beta * prev + drive
            s = vn > thr
            reset = torch.from_numpy(node.v_reset if node.v_reset is not None
                                     else np.zeros_like(node.v_threshold))
            vn = vn - thr * s if soft_reset else torch.where(s, reset, vn)
            v[name] = vn
            spikes[name].append(s.numpy())
            h = s.double()
    last = order[-1]
    return ({n: np.stack(sp, -1) for n, sp in spikes.items()}, v[last].numpy())
