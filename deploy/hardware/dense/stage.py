"""The dense stage of the report: a roofline estimate on a named accelerator, or, for
``host-cpu``, a measurement on the spot with the estimate beside it.

- Named accelerators (H100, A100, Jetson Orin, Tianjic): the roofline of
  :mod:`deploy.hardware.dense.roofline` with the preset's launch floor and achieved fraction,
  the launches counted from the artifact's optimised ONNX graph when it is at hand.
  Interval: from the ideal roofline (peak rate, no launch cost: a lower bound) to the
  estimate; energy: board power (TDP) x time, an upper bound.
- ``host-cpu``: onnxruntime on the artifact's own ``dense.onnx`` at batch 1 and a
  pipelined batch (:func:`deploy.hardware.dense.onhost.measure`); the roofline calibrated
  with micro-benchmarks of the same engine (:func:`~deploy.hardware.dense.onhost.calibrate`)
  beside it, and their ratio. Interval: a bootstrap of the median over the timed runs.
  Energy: RAPL x the run when readable, else the threads' share of the TDP x time, an
  upper bound, labelled which.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy.hardware import host, uncertainty
from deploy.hardware.dense import onhost
from deploy.hardware.dense.roofline import roofline, summarise
from deploy.hardware.targets import HOST_CPU, AcceleratorPreset, host_cpu
from deploy.presets import EnergyPreset


def dense_stage(layers, acc: AcceleratorPreset, precision: str,
                onnx_path: str | Path | None = None, energy: EnergyPreset | None = None,
                threads: int = 1, batch: int = 8, repeats: int = 5, seed: int = 0,
                cpu: host.HostCpu | None = None) -> tuple[dict, tuple]:
    """(the report's ``dense`` object, its bootstrap replicates (time, energy))."""
    launches = onhost.optimized_nodes(onnx_path, threads) if onnx_path else None
    if acc.name != HOST_CPU:
        d = summarise(roofline(layers, acc, precision, energy, launches), acc, precision)
        d["launches"] = launches or len(layers)
        d["energy_label"] = "board power (TDP) x time: an upper bound"
        t = uncertainty.constant(d["time_s"])
        d["interval"] = {"time_s": [d["ideal_s"], d["time_s"]],
                         "energy_j": [d["ideal_s"] * acc.board_power_w, d["energy_j"]],
                         "method": "bounds: the ideal roofline (peak rate, no launch floor) "
                                   "to the estimate (launch floor and achieved fraction)"}
        return d, (t, uncertainty.constant(d["energy_j"]))
    if onnx_path is None:
        raise ValueError("host-cpu measures the dense partition's ONNX: none given")
    cpu = cpu or host.read_cpu()
    cal = onhost.calibrate(threads, cpu.mhz, cpu.flags, onhost.typical_shape(layers),
                              repeats)
    acc = host_cpu(cpu, cal)
    est = summarise(roofline(layers, acc, "fp32", energy, launches), acc, "fp32")
    meter = host.EnergyMeter()
    meter.start()
    m = onhost.measure(onnx_path, threads, batch, repeats)
    rapl_j = meter.stop()
    wall = m["batch_1"]["wall_values"]
    t_rep = uncertainty.replicates(wall, np.median, seed=seed)
    if rapl_j is not None:
        total = sum(sum(m[k]["first_runs_s"]) + sum(m[k]["wall_values"])
                    for k in ("batch_1", "batch_n"))
        power, plabel = rapl_j / total, ("measured (RAPL power over the runs x time; the "
                                         "whole package: an upper bound)")
    else:
        power = acc.board_power_w
        plabel = (f"estimated (TDP share: {threads} thread(s) x TDP / cores = {power:.1f} W, "
                  "x time: an upper bound; RAPL not readable)")
    est_ratio = est["time_s"] / m["per_video_s"]
    d = {**est, "label": m["label"], "time_s": m["per_video_s"],
         # pipelined: the better of batch 1 and the batch (a larger batch can be slower
         # a video on a CPU whose caches it overflows)
         "pipelined_time_s": min(m["per_video_pipelined_s"], m["per_video_s"]),
         "energy_j": power * m["per_video_s"],
         "energy_label": plabel, "power_w": power,
         "measurement": m, "calibration": cal, "launches": launches,
         "estimate": {"time_s": est["time_s"], "ideal_s": est["ideal_s"],
                      "label": "estimated (roofline calibrated on this host)",
                      "ratio_to_measured": est_ratio}}
    d["interval"] = uncertainty.interval(t_rep, power * t_rep,
                                         f"bootstrap of the median over {repeats} timed runs")
    return d, (t_rep, power * t_rep)
