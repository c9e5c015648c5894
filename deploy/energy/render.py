"""The energy profile report (:meth:`deploy.energy.profiler.Profile.report`) as text."""
from __future__ import annotations

from deploy.units import joules, si


def render(rep: dict) -> str:
    """The text report: per layer, per partition, per video, the paper's rows."""
    head = ("layer", "partition", "kind", "ops", "input spikes", "rate", "energy")
    rows = [(r["name"], r["partition"], r["kind"].upper(), si(r["ops"]),
             si(r["input_spikes"]) if r["kind"] == "ac" else "-",
             f"{r['firing_rate']:.4f}" if "firing_rate" in r else "-",
             joules(r["energy_j"])) for r in rep["layers"]]
    w = [max(len(x[i]) for x in (head, *rows)) for i in range(len(head))]

    def line(cells):
        return "  ".join(c.ljust(w[i]) if i < 3 else c.rjust(w[i]) for i, c in enumerate(cells))

    p, pv, pr, paper = rep["preset"], rep["per_video"], rep["paper_reading"], rep["paper_row"]
    out = [f"energy profile: {rep['videos']} videos, views {rep['views']}, preset "
           f"{p['name']} ({p['mac_j'] * 1e12:.3g} pJ/MAC, {p['ac_j'] * 1e12:.3g} pJ/AC, "
           f"{p['neuron_j'] * 1e12:.3g} pJ/neuron update); per video, mean over videos",
           line(head), "-" * (sum(w) + 2 * (len(w) - 1)), *map(line, rows), ""]
    for name, part in rep["partitions"].items():
        out.append(f"{name:<8} MACs {si(part['macs']):>9}  ACs {si(part['acs']):>9}  "
                   f"energy {joules(part['energy_j'])}")

    def stat(k, fmt):
        return f"{fmt(pv[k]['mean'])} [{fmt(pv[k]['min'])} .. {fmt(pv[k]['max'])}]"

    out += ["", "per video, mean [min .. max]:",
            f"  ours           MACs {stat('macs', si)}  ACs {stat('acs', si)}  "
            f"energy {stat('energy_j', joules)}",
            f"  paper's reading of ours (all STM layers as ACs, rate x dense): "
            f"MACs {si(pr['macs'])}  ACs {si(pr['acs'])}  energy {joules(pr['energy_j'])}",
            f"  the paper's method row: MACs {paper['macs'] / 1e12:.2f} T  ACs "
            f"{paper['acs'] / 1e9:.2f} G  energy {paper['energy_j']} J (45nm-fp32; UCF-101, "
            "views 8x1)"]
    return "\n".join(out)
