"""Both partitions on a hybrid chip (Tianjic): SNN-mode cores for the STMs, ANN-mode
cores for the dense layers, cores and chips needed, and the binding constraint.

- Spiking partition: :func:`deploy.hardware.neurocores.mapping.map_network` under the
  chip's SNN-mode
  preset (:meth:`deploy.hardware.targets.HybridChipPreset.snn_mode`: 256 neurons and 256 input
  axons a core, the SRAM holding weights and state), one layer per core as the mapping
  does.
- Dense partition: every MAC layer of :func:`deploy.hardware.dense.roofline.dense_layers` whose
  weights are stored is split over ANN-mode cores: its fan-in in groups of at most
  ``fan_in_per_core`` inputs (partial sums added across cores), its outputs in groups of
  ``o = min(neurons_per_core, weights_per_core // fan-in group)``, so
  ``cores = ceil(F / 256) * ceil(O / o)``; tokens and positions are processed in turn by
  the same cores (time-multiplexed, weights reused). Layers that multiply two
  activations (attention's Q K^T and A V) have no stored weights: a core multiplies its
  inputs by weights held in its SRAM, so they cannot run on its cores as they are; they
  are reported, not mapped.

A lower bound on cores: the routing of partial sums, relay cores for multicast fan-out
and the ANN/SNN conversion cores are not counted.
"""
from __future__ import annotations

import math

from deploy.hardware.dense.roofline import DenseLayer
from deploy.hardware.neurocores.mapping import map_network
from deploy.hardware.targets import HybridChipPreset
from neuro.export import StmNetwork


def dense_cores(layer: DenseLayer, chip: HybridChipPreset) -> tuple[int, str]:
    """(ANN-mode cores, binding per-core limit) of one dense layer with stored weights."""
    f = min(layer.fan_in, chip.fan_in_per_core)
    o = min(chip.neurons_per_core, chip.weights_per_core // f, layer.outputs)
    binding = "neurons" if o == chip.neurons_per_core else "memory"
    if layer.fan_in > chip.fan_in_per_core and binding == "neurons":
        binding = "fan_in"
    return math.ceil(layer.fan_in / f) * math.ceil(layer.outputs / o), binding


def verdict(nets: dict[str, StmNetwork], layers: list[DenseLayer],
            chip: HybridChipPreset) -> dict:
    """Cores of both partitions on ``chip``, chips needed, whether it fits one, and why not."""
    mp = map_network(nets, chip.snn_mode())
    snn = {"cores": mp.cores_used, "problems": mp.problems,
           "layers": [{"name": m.name, "cores": m.cores, "binding": m.binding}
                      for m in mp.layers]}
    rows, unmappable = [], []
    for la in layers:
        if la.outputs == 0:
            unmappable.append(la.name)
            continue
        n, binding = dense_cores(la, chip)
        rows.append({"name": la.name, "cores": n, "binding": binding, "fan_in": la.fan_in,
                     "outputs": la.outputs, "weights": la.fan_in * la.outputs})
    ann = sum(r["cores"] for r in rows)
    total = snn["cores"] + ann
    by_binding: dict[str, int] = {}
    for r in rows:
        by_binding[r["binding"]] = by_binding.get(r["binding"], 0) + r["cores"]
    for m in mp.layers:
        if m.binding:
            by_binding[m.binding] = by_binding.get(m.binding, 0) + (m.cores or 0)
    why = []
    if total > chip.cores:
        top = max(by_binding, key=by_binding.get)
        why.append(f"{total:,} cores needed ({snn['cores']:,} SNN-mode for the STMs, "
                   f"{ann:,} ANN-mode for the dense layers), {chip.title} has {chip.cores}; "
                   f"binding per-core limit: {top} ({by_binding[top]:,} of the cores)")
    if unmappable:
        why.append(f"{len(unmappable)} activation x activation matmuls (attention's "
                   "Q K^T and A V) have no stored weights: Tianjic's cores multiply by "
                   "weights in their SRAM")
    why += [p for p in mp.problems if "cores needed" not in p]  # the total is above
    return {"chip": chip.name, "title": chip.title, "source": chip.source,
            "label": "estimated (core counts; a lower bound)",
            "snn_cores": snn["cores"], "ann_cores": ann, "cores_needed": total,
            "cores_per_chip": chip.cores, "chips_needed": math.ceil(total / chip.cores),
            "fits_one_chip": not why, "why_not": why, "binding_cores": by_binding,
            "unmappable": unmappable, "snn_layers": snn["layers"], "ann_layers": rows,
            "assumptions": chip.snn_mode.__doc__.split("Assumed", 1)[1].strip()}
