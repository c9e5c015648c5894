"""One report per video of the hybrid chip: time and energy of every stage.

Stages of one video (``S`` segments, one P-frame sequence of ``T`` steps per segment and
STM branch):

1. host stages, *measured* by the caller (``hybrid.ondevice.host_timing``): ``transcode``
   when the source is not MPEG-4 GOP 12 at the read size, and ``extract``, the
   compressed-domain extraction of what the model reads;
2. ``spiking``: the STMs on neurocores: *simulated* with SANA-FE
   (:mod:`deploy.hardware.neurocores.simulation`)
   for layers 2..L on a sample of sequences, the first layer (graded input, which SANA-FE
   cannot model) *estimated*: its energy by the profiler under the ``loihi`` energy
   preset, its time per step from SANA-FE's own per-event latencies
   (:mod:`deploy.hardware.neurocores.layer1`); a step's time is the sum of the layers' modelled
   times (layer 1's spikes reach layer 2 only once its cores have produced them: a
   serialisation, so an upper bound; the full-overlap lower bound is reported beside);
   segments x branches run side by side when the mapping fits one chip
   (``sequences_per_chip`` copies), else in turn;
3. ``bridge``: the membrane potentials of every segment over a link: *estimated*
   (:mod:`deploy.hardware.link`);
4. ``dense``: the dense partition on an accelerator: *estimated* by a roofline
   (:mod:`deploy.hardware.dense.stage`), or *measured* on this host (``host-cpu``).

Every stage has ``time_s``, ``energy_j`` and an ``interval``
(:mod:`deploy.hardware.uncertainty`).

Latency of one video = the sum of the stage times; throughput when videos are pipelined
through the stages = 1 / the slowest stage. The paper's figures (0.734 J and 16.0
videos/s, its GPU measurement) are printed beside ours.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from deploy.energy.profiler import count_layer, stm_geometry
from deploy.hardware.neurocores import layer1, simulation
from deploy.presets import EnergyPreset
from neuro.export import StmNetwork

PAPER = {"energy_j": 0.734, "throughput_vps": 16.0,
         "source": "Das Biswas et al., the paper's UCF-101 table (0.734 J a video) and its "
                   "throughput, 16.0 videos/s, measured on a GPU",
         "label": "measured (the paper, on a GPU)"}
PARTS = ("synapse_energy", "dendrite_energy", "soma_energy", "network_energy")


def _stats(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
            "values": v.tolist()}


def simulate_branch(net: StmNetwork, sequences: list[tuple[np.ndarray, np.ndarray]],
                    energy: EnergyPreset, tilings=None, name: str = "stm",
                    progress: Callable[[int], None] | None = None,
                    costs: layer1.EventCosts | None = None) -> dict:
    """One STM branch over sampled sequences: ``sequences`` of (graded input messages
    (C, H, W, T), the first layer's output spikes (C1, H1, W1, T), recorded from Lava).
    ``costs``: layer 1's per-event latencies (default: SANA-FE's Loihi file)."""
    sim = simulation.build(net, tilings)
    costs = costs or layer1.event_costs(simulation.stock_loihi())
    spec1 = net.layers[0]
    tiling1 = (tilings[0] if tilings is not None
               else simulation.default_tiling(tuple(spec1.shape)))
    T = sequences[0][1].shape[-1]
    geo = stm_geometry(net.config, tuple(net.input_shape[1:]), prefix=name)[0]
    runs, l1, l1_time = [], [], []
    for msgs, s1 in sequences:
        r = simulation.simulate(sim, s1)
        runs.append(r)
        l1_time.append(layer1.layer_time(
            tuple(net.input_shape), spec1.weight.shape, spec1.stride, spec1.padding,
            tuple(spec1.shape), tiling1, msgs, s1, sim._fanout_cores[0], costs,
            steps=len(r.per_step["sim_time"]))["time_s"])
        c = count_layer(geo, msgs[None], s1[None])
        l1.append(c.synops * energy.ac_j + c.neuron_updates * energy.neuron_j)
        if progress:
            progress(1)
    steps = len(runs[0].per_step["sim_time"])
    sf_t = np.array([r.per_step["sim_time"] for r in runs])  # (sequences, steps)
    l1_t = np.array(l1_time)
    per_step = {
        "time_s": (sf_t + l1_t).mean(0).tolist(),
        "simulated_time_s": sf_t.mean(0).tolist(), "layer1_time_s": l1_t.mean(0).tolist(),
        "energy_j": [float(np.mean([r.per_step["total_energy"][t] for r in runs]))
                     for t in range(steps)]}
    for p in PARTS:
        per_step[p.replace("_energy", "_j")] = [
            float(np.mean([r.per_step[p][t] for r in runs])) for t in range(steps)]
    seq_time = (sf_t + l1_t).sum(1)
    seq_energy = [sum(r.per_step["total_energy"]) + e1 for r, e1 in zip(runs, l1)]
    layers = [{"name": f"{name}.1", "source": "replayed from the Lava run (input neurons); "
               "time estimated from per-event latencies (deploy/hardware/neurocores/layer1.py)",
               "spikes_per_step": np.mean([s1.reshape(-1, T).sum(0) for _, s1 in sequences],
                                          0).tolist(),
               "messages_per_step": np.mean([r.messages[0] for r in runs], 0).tolist(),
               "time_s_per_step": l1_t.mean(0).tolist()}]
    for k in range(len(runs[0].spikes)):
        layers.append({"name": f"{name}.{k + 2}", "source": "simulated (SANA-FE)",
                       "spikes_per_step": np.mean([r.spikes[k] for r in runs], 0).tolist(),
                       "messages_per_step": np.mean([r.messages[k + 1] for r in runs],
                                                    0).tolist()})
    out = {"sequences_simulated": len(runs), "steps_simulated": steps, "timesteps": T,
           "cores": sim.cores_used, "input_cores": sim.input_cores,
           "arch_tiles": sim.arch_tiles, "saturation_risk_layers": sim.saturation_risk,
           "mesh_chips": sim.chips,
           "chip_traffic": {  # per sequence (deploy/hardware/boards.py costs them)
               "boundary_messages": [r.boundary_messages.tolist() for r in runs],
               "chip_hops": [r.chip_hops.tolist() for r in runs]},
           "per_step": per_step, "layers": layers,
           "per_sequence": {"time_s": _stats(seq_time), "energy_j": _stats(seq_energy),
                            "layer1_energy_j": _stats(l1),
                            "layer1_time_s": _stats(l1_t.sum(1)),
                            "simulated_time_s": _stats(sf_t.sum(1)),
                            "time_s_if_overlapped": _stats(np.maximum(sf_t, l1_t).sum(1))},
           "layer1": {"energy_j": float(np.mean(l1)), "time_s": float(l1_t.sum(1).mean()),
                      "cores": tiling1.count(tuple(spec1.shape)), "label": (
               f"estimated: energy by the profiler ({energy.name} preset: exact fan-out of "
               "the graded messages x ac_j + neuron updates x neuron_j); time from "
               "per-event latencies of " + costs.source)},
           "time_composition": (
               "a step's time = SANA-FE's simulated time of layers 2..L + layer 1's "
               "modelled time (the sum of the layers' times: an upper bound; "
               "time_s_if_overlapped, each step the longer of the two, a lower bound)")}
    del sim  # one SANA-FE network alive at a time (memory)
    return out


def spiking_stage(branches: dict[str, dict], segments: int, mapping: dict | None) -> dict:
    """The spiking stage per video from each branch's :func:`simulate_branch` result:
    side by side when the mapping fits one chip, else segments x branches in turn."""
    copies = int(mapping.get("sequences_per_chip", 0)) if mapping and mapping.get("fits") else 0
    seq_t = {m: b["per_sequence"]["time_s"]["mean"] for m, b in branches.items()}
    seq_e = {m: b["per_sequence"]["energy_j"]["mean"] for m, b in branches.items()}
    if copies >= 1:
        rounds = math.ceil(segments / copies)
        time_s, placement = rounds * max(seq_t.values()), (
            f"side by side: {copies} copies of both branches on one chip, "
            f"{rounds} round(s) of sequences")
    else:
        time_s, placement = segments * sum(seq_t.values()), (
            "in turn: segments x branches one after another (the mapping does not fit "
            "one chip)" if mapping else "in turn (no mapping given)")
    steps = min(len(b["per_step"]["time_s"]) for b in branches.values())
    side = copies >= 1
    per_step = {"time_s": [(max if side else sum)(b["per_step"]["time_s"][t]
                                                  for b in branches.values())
                           for t in range(steps)],
                "energy_j": [sum(b["per_step"]["energy_j"][t] for b in branches.values())
                             for t in range(steps)]}
    for p in PARTS:
        k = p.replace("_energy", "_j")
        per_step[k] = [sum(b["per_step"][k][t] for b in branches.values()) for t in range(steps)]
    return {"branches": branches, "per_step": per_step, "placement": placement,
            "segments": segments, "time_s": time_s,
            "energy_j": segments * sum(seq_e.values()),
            "label": "simulated (SANA-FE, layers 2..L) + estimated (layer 1: energy by the "
                     "profiler, time from per-event latencies)"}


def report(neuro: dict, host: list[dict], bridge: dict, dense: dict) -> dict:
    """The per-video report: ``stages`` (``name``, ``time_s``, ``energy_j``, ``source``;
    the ``host`` stages first, as given), ``per_video`` (``latency_s``,
    ``throughput_vps``, ``energy_j``), ``neuro``, ``paper``."""
    stages = [*host,
        {"name": "spiking", "time_s": neuro["time_s"], "energy_j": neuro["energy_j"],
         "source": neuro["label"] + "; " + neuro["placement"]},
        {"name": "bridge", "time_s": bridge["time_s"], "energy_j": bridge["energy_j"],
         "source": f"{bridge['label']}: {bridge['bytes']:,} bytes over {bridge['title']}"},
        {"name": "dense", "time_s": dense["time_s"], "energy_j": dense["energy_j"],
         "source": f"{dense['label']}: {dense['title']}, {dense['precision']}; energy "
                   f"{dense.get('energy_label', 'board power x time')}",
         **({"pipelined_time_s": dense["pipelined_time_s"]}
            if "pipelined_time_s" in dense else {})},
    ]
    chip = [s for s in stages if s["name"] in ("spiking", "bridge", "dense")]
    return {"neuro": neuro, "bridge": bridge, "dense": dense, "stages": stages,
            "per_video": {"latency_s": sum(s["time_s"] for s in stages),
                          "throughput_vps": 1 / max(s.get("pipelined_time_s", s["time_s"])
                                                    for s in stages),
                          "energy_j": sum(s["energy_j"] for s in stages),
                          "chip_energy_j": sum(s["energy_j"] for s in chip),
                          "label": "latency: sum of the stages; throughput: videos "
                                   "pipelined through the stages (1 / slowest stage, at "
                                   "its batched time where measured); energy: every stage "
                                   "(chip_energy_j: spiking + bridge + dense, the paper's "
                                   "scope)"},
            "paper": PAPER}


def timeline(rep: dict) -> list[tuple[str, float, float]]:
    """(stage, start, end) of one video through the stages, in seconds (for a Gantt)."""
    t, out = 0.0, []
    for s in rep["stages"]:
        d = s["time_s"] or 0.0
        out.append((s["name"], t, t + d))
        t += d
    return out
