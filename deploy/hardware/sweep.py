"""Design-space exploration of the hybrid chip: every combination of the presets given,
evaluated from one recorded neurocore simulation.

The spikes (Lava) and the neurocore simulation (SANA-FE) do not depend on the board, the
accelerator, the precision, the link or the batch: :func:`evaluate` takes the branches
:func:`deploy.hardware.report.simulate_branch` recorded once and costs each combination
analytically (:mod:`deploy.hardware.boards`, :mod:`deploy.hardware.link`,
:mod:`deploy.hardware.dense.roofline`): milliseconds a point.

Batch ``B`` (videos pipelined through the stages, the accelerator running ``B`` at a
time): per video, the dense stage costs its batch's roofline time and energy / ``B``
(weights read once a batch); a video's latency = spiking + bridge + the batch's dense
time + the wait for the ``B - 1`` videos after it (``B - 1`` x the slowest stage before
the accelerator); throughput = 1 / the slowest stage per video. The host's extraction is
the same at every point and is left out of the points (the report gives it).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from deploy.hardware import boards
from deploy.hardware.dense.roofline import DenseLayer, roofline, summarise
from deploy.hardware.link import bridge_transfer
from deploy.hardware.targets import AcceleratorPreset, LinkPreset
from deploy.presets import PresetError

FORMAT, VERSION = "hybrid-chip-sweep", 1


@dataclass(frozen=True)
class Axes:
    """The presets to combine (each a non-empty list)."""

    boards: list  # BoardPreset
    accelerators: list  # AcceleratorPreset
    precisions: list  # str
    links: list  # LinkPreset
    batches: list  # int >= 1

    def __post_init__(self):
        for k in ("boards", "accelerators", "precisions", "links", "batches"):
            if not getattr(self, k):
                raise ValueError(f"sweep: no {k} given")
        if any(not isinstance(b, int) or b < 1 for b in self.batches):
            raise ValueError(f"sweep: batches must be integers >= 1, got {self.batches}")
        if self.size() < 2:
            raise ValueError("a sweep needs two or more values of at least one of board, "
                             "accelerator, precision, link, batch (one of each given: nothing "
                             "to vary)")

    def size(self) -> int:
        return (len(self.boards) * len(self.accelerators) * len(self.precisions)
                * len(self.links) * len(self.batches))


def dense_batch(layers: list[DenseLayer], acc: AcceleratorPreset, precision: str,
                batch: int) -> dict:
    """The dense stage for ``batch`` videos at once (MACs and activations x batch,
    weights once): the roofline of :mod:`deploy.hardware.dense.roofline`."""
    scaled = [replace(la, macs=la.macs * batch, activation_values=la.activation_values * batch)
              for la in layers]
    return summarise(roofline(scaled, acc, precision), acc, precision)


def point(branches: dict, segments: int, cores_used: int, reload_bits: int,
          layers: list[DenseLayer], bridge_bytes: int, board: boards.BoardPreset,
          acc: AcceleratorPreset, precision: str, link: LinkPreset, batch: int) -> dict:
    """One combination: per video latency, throughput, energy and the stages'."""
    sp = boards.spiking_on_board(branches, segments, cores_used, board, reload_bits)
    br = bridge_transfer(bridge_bytes, link)
    de = dense_batch(layers, acc, precision, batch)
    stages = {"spiking": (sp["time_s"], sp["energy_j"]), "bridge": (br["time_s"], br["energy_j"]),
              "dense": (de["time_s"] / batch, de["energy_j"] / batch)}
    wait = (batch - 1) * max(sp["time_s"], br["time_s"])
    latency = sp["time_s"] + br["time_s"] + de["time_s"] + wait
    return {"board": board.name, "accelerator": acc.name, "precision": precision,
            "link": link.name, "batch": batch, "chips": sp["chips"]["count"],
            "chip_mode": sp["chips"]["mode"], "latency_s": latency,
            "throughput_vps": 1 / max(t for t, _ in stages.values()),
            "energy_j": sum(e for _, e in stages.values()),
            "stages": {k: {"time_s": t, "energy_j": e} for k, (t, e) in stages.items()},
            "label": "simulated (spiking: SANA-FE) + estimated (layer 1, chip-to-chip, "
                     "bridge, dense roofline)"}


def evaluate(branches: dict, segments: int, cores_used: int, reload_bits: int,
             layers: list[DenseLayer], bridge_bytes: int, axes: Axes) -> dict:
    """Every combination of ``axes``: ``points`` (each with ``pareto``: no other point is
    at least as fast and as frugal and better in one), ``skipped`` (combinations that
    cannot run, with why)."""
    points, skipped = [], []
    for b, a, p, lk, n in itertools.product(axes.boards, axes.accelerators, axes.precisions,
                                            axes.links, axes.batches):
        try:
            points.append(point(branches, segments, cores_used, reload_bits, layers,
                                bridge_bytes, b, a, p, lk, n))
        except PresetError as exc:
            skipped.append({"board": b.name, "accelerator": a.name, "precision": p,
                            "link": lk.name, "batch": n, "why": str(exc)})
    if not points:
        raise ValueError("no combination of the sweep can run: " + skipped[0]["why"])
    for q in points:
        q["pareto"] = not any(
            o is not q and o["latency_s"] <= q["latency_s"] and o["energy_j"] <= q["energy_j"]
            and (o["latency_s"] < q["latency_s"] or o["energy_j"] < q["energy_j"])
            for o in points)
    return {"format": FORMAT, "version": VERSION, "points": points, "skipped": skipped}


def label(q: dict) -> str:
    """A point's short name: board | accelerator precision | link | batch."""
    return f"{q['board']} | {q['accelerator']} {q['precision']} | {q['link']} | b{q['batch']}"


def table(points: list[dict]) -> str:
    """The points as a text table, fastest first."""
    head = ("board", "chips", "accelerator", "prec", "link", "batch", "latency", "videos/s",
            "energy", "pareto")
    rows = [head]
    for q in sorted(points, key=lambda q: q["latency_s"]):
        rows.append((q["board"], str(q["chips"]), q["accelerator"], q["precision"], q["link"],
                     str(q["batch"]), _si(q["latency_s"], "s"), f"{q['throughput_vps']:.4g}",
                     _si(q["energy_j"], "J"), "*" if q["pareto"] else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _si(v: float, unit: str) -> str:
    for p, k in (("", 1), ("m", 1e-3), ("u", 1e-6), ("n", 1e-9)):
        if abs(v) >= k:
            return f"{v / k:.3g} {p}{unit}"
    return f"{v:.3g} {unit}"
