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
from deploy.hardware.dense.roofline import dense_layers
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
    """Latency against energy per video, log axes: every point numbered (points at the
    same place share one label), the key beside (number: board | accelerator precision |
    link | batch; * Pareto-optimal), the Pareto front joined, the paper's GPU point
    (1 / 16.0 videos/s, 0.734 J) beside."""
    import math

    from hybrid.ondevice.energy import pyplot

    plt = pyplot()
    pts = sorted(res["points"], key=lambda q: (q["latency_s"], q["energy_j"]))
    fig, (ax, key) = plt.subplots(1, 2, figsize=(11.5, 6.4),
                                  gridspec_kw={"width_ratios": [2.6, 1.25]})
    boards = sorted({q["board"] for q in pts})
    accs = sorted({q["accelerator"] for q in pts})
    colours = plt.get_cmap("tab10")
    markers = "osD^vP*Xh"
    spots: dict = {}
    for i, q in enumerate(pts, start=1):
        ax.scatter(q["latency_s"], q["energy_j"], s=46, zorder=3,
                   color=colours(boards.index(q["board"]) % 10),
                   marker=markers[accs.index(q["accelerator"]) % len(markers)],
                   edgecolor="black" if q["pareto"] else "none", linewidth=0.9)
        # points within 0.04 decades share one label
        at = (round(math.log10(q["latency_s"]) / 0.04), round(math.log10(q["energy_j"]) / 0.04))
        spots.setdefault(at, []).append((i, q))
    for group in spots.values():
        ids = [str(i) for i, _ in group]
        ids = "\n".join(",".join(ids[k:k + 10]) for k in range(0, len(ids), 10))
        q = group[0][1]
        ax.annotate(ids, (q["latency_s"], q["energy_j"]), fontsize=6, xytext=(5, 3),
                    textcoords="offset points", color="0.2")
    front = [q for q in pts if q["pareto"]]
    ax.plot([q["latency_s"] for q in front], [q["energy_j"] for q in front], color="black",
            linewidth=0.8, linestyle="--", zorder=2, label="Pareto front")
    p = res["paper"]
    ax.scatter(1 / p["throughput_vps"], p["energy_j"], marker="*", s=190, color="crimson",
               zorder=4, label=f"the paper, GPU: 1 / {p['throughput_vps']} videos/s, "
                               f"{p['energy_j']} J (measured)")
    ax.annotate("paper (GPU)", (1 / p["throughput_vps"], p["energy_j"]), fontsize=7,
                xytext=(-20, -13), textcoords="offset points", color="crimson")
    for i, b in enumerate(boards):
        ax.scatter([], [], color=colours(i % 10), marker="o", label=f"board {b}")
    for i, a in enumerate(accs):
        ax.scatter([], [], color="0.5", marker=markers[i % len(markers)], label=a)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency per video (s; chip stages: spiking + bridge + dense)")
    ax.set_ylabel("energy per video (J)")
    ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    lines = [f"{'*' if q['pareto'] else ' '}{i:>3}  {label(q)}"
             for i, q in enumerate(pts, start=1)]
    key.axis("off")
    size = max(3.5, min(7.0, 330 / (len(lines) + 2)))
    key.text(0, 1, "\n".join(["  key (* Pareto-optimal)", *lines]), va="top", ha="left",
             family="monospace", fontsize=size, transform=key.transAxes)
    handles, names = ax.get_legend_handles_labels()  # beside the plot: no point hidden
    key.legend(handles, names, fontsize=7, loc="lower left", frameon=False)
    fig.suptitle(title or "hybrid chip design space per video: spiking simulated (SANA-FE) "
                 "+ layer 1, chip-to-chip, bridge and dense estimated", fontsize=9)
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
