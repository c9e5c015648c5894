"""``hybrid chip --sweep``: record the spikes and simulate the neurocores once
(:func:`hybrid.ondevice.chip_report.estimate`), then cost every combination of the
presets given (:mod:`deploy.hardware.sweep`) and write a table, the JSON and a Pareto
plot (latency against energy per video, log axes, the paper's GPU point beside)."""
from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path

from deploy.hardware import report
from deploy.hardware.accelerator import dense_layers
from deploy.hardware.sweep import Axes, evaluate, label, table
from hybrid.ondevice.chip_report import estimate

FILES = ("chip_sweep.json", "chip_sweep.txt", "chip_pareto.png")


def runnable(axes: Axes, neuro: str) -> tuple:
    """(board, accelerator, precision) for the one recorded simulation; ValueError when no
    combination of ``axes`` can run (said before anything is simulated)."""
    bs = [b for b in axes.boards if b.simulated and b.chip == neuro]
    pairs = [(a, p) for a in axes.accelerators for p in axes.precisions if p in a.peak_ops]
    if not bs:
        raise ValueError(f"no board of the sweep is a {neuro!r} system the neurocore "
                         f"simulation models (given: {', '.join(b.name for b in axes.boards)})")
    if not pairs:
        raise ValueError("no accelerator of the sweep has any of the precisions given")
    return bs[0], *pairs[0]


def run(paths, nets, dense_cfg, dataset, crop, axes: Axes, sequences: int,
        mapping: dict | None, neuro: str, bridge_bytes: int | None,
        progress: Callable | None = None, dense_onnx: Path | None = None) -> dict:
    """The sweep's JSON (``points``, ``skipped``, ``record_s``, ``evaluate_s``, the
    recorded ``report``, ``paper``)."""
    b, acc, prec = runnable(axes, neuro)
    t0 = time.perf_counter()
    rep = estimate(paths, nets, dense_cfg, dataset, crop, acc, prec, axes.links[0],
                   sequences, mapping, neuro, bridge_bytes=bridge_bytes, progress=progress,
                   board=b, dense_onnx=dense_onnx)
    t1 = time.perf_counter()
    n = rep["neuro"]
    res = evaluate(n["branches"], dense_cfg.segments, int(n["cores_used"]),
                   int(n["reload_bits"]), dense_layers(dense_cfg), rep["bridge"]["bytes"],
                   axes)
    t2 = time.perf_counter()
    return res | {"record_s": t1 - t0, "evaluate_s": t2 - t1, "combinations": axes.size(),
                  "paper": report.PAPER,
                  "host_extract_s": next(s["time_s"] for s in rep["stages"]
                                         if s["name"] == "extract"),
                  "note": "points: the chip stages (spiking, bridge, dense) per video; the "
                          "host's extraction (host_extract_s) is the same at every point",
                  "report": rep}


def plot_pareto(res: dict, title: str = ""):
    """Latency against energy per video, log axes; every point labelled, the Pareto front
    joined, the paper's GPU point (1 / 16.0 videos/s, 0.734 J) beside."""
    from hybrid.ondevice.energy import pyplot

    plt = pyplot()
    pts = res["points"]
    fig, ax = plt.subplots(figsize=(9.0, 6.0))
    boards = sorted({q["board"] for q in pts})
    accs = sorted({q["accelerator"] for q in pts})
    colours = plt.get_cmap("tab10")
    markers = "osD^vP*Xh"
    for q in pts:
        ax.scatter(q["latency_s"], q["energy_j"], s=42, zorder=3,
                   color=colours(boards.index(q["board"]) % 10),
                   marker=markers[accs.index(q["accelerator"]) % len(markers)],
                   edgecolor="black" if q["pareto"] else "none", linewidth=0.8)
        ax.annotate(label(q), (q["latency_s"], q["energy_j"]), fontsize=5.5,
                    xytext=(4, 2), textcoords="offset points", color="0.25")
    front = sorted((q for q in pts if q["pareto"]), key=lambda q: q["latency_s"])
    ax.plot([q["latency_s"] for q in front], [q["energy_j"] for q in front], color="black",
            linewidth=0.8, linestyle="--", zorder=2, label="Pareto front")
    p = res["paper"]
    ax.scatter(1 / p["throughput_vps"], p["energy_j"], marker="*", s=180, color="crimson",
               zorder=4, label=f"the paper, GPU: {p['throughput_vps']} videos/s "
                               f"(1/throughput), {p['energy_j']} J")
    ax.annotate("paper (GPU)", (1 / p["throughput_vps"], p["energy_j"]), fontsize=7,
                xytext=(5, -10), textcoords="offset points", color="crimson")
    for i, b in enumerate(boards):
        ax.scatter([], [], color=colours(i % 10), marker="o", label=f"board {b}")
    for i, a in enumerate(accs):
        ax.scatter([], [], color="0.5", marker=markers[i % len(markers)], label=a)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency per video (chip stages: spiking + bridge + dense)")
    ax.set_ylabel("energy per video (J)")
    ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title or "hybrid chip design space: simulated + estimated (labels: board | "
                 "accelerator precision | link | batch)", fontsize=9)
    fig.tight_layout()
    return fig


def write(res: dict, out: Path, title: str = "") -> list[Path]:
    """The table, the JSON and the Pareto plot into ``out``: everything is rendered first,
    then each file written whole (atomically), so a failure leaves none half-written."""
    from deploy.atomic import write_file
    from hybrid.ondevice.energy import pyplot

    fig = plot_pareto(res, title)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=130)
    pyplot().close(fig)
    blobs = {FILES[0]: json.dumps(res, indent=2).encode(),
             FILES[1]: (table(res["points"]) + "\n").encode(),
             FILES[2]: png.getvalue()}
    out.mkdir(parents=True, exist_ok=True)
    return [write_file(out / name, lambda f, b=blob: f.write(b)) for name, blob in blobs.items()]
