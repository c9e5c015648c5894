"""Multi-chip neuromorphic systems, and how the STMs are placed on one: side by side on
one chip, across the chips of a board with chip-to-chip messages costed, or one chip
time-multiplexed with its weights reloaded.

The neurocore simulation (:mod:`deploy.hardware.neurocores.simulation`) grows SANA-FE's Loihi mesh
by whole rows of tiles when a branch needs more cores than a chip has; every stock mesh
(8 x 4 tiles, 128 cores) of it is one chip here, and each message that crosses from one
chip's rows to another's is counted per chip boundary crossed
(``SequenceResult.boundary_messages``, ``chip_hops``). SANA-FE itself costs such a crossing
as one more tile hop; :func:`spiking_on_board` adds the board's chip-to-chip figures on
top. A mesh larger than one chip is never reported as one chip: :func:`placement` says
how many chips a copy of the STMs takes and which mode the board runs them in, and why.

Chip-to-chip figures: Intel has published no per-hop energy or latency of Loihi's
chip-to-chip links; the figures below are ASSUMED orders of magnitude, said so in each
preset's ``source`` and in the report, and are what a sweep should vary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from deploy.hardware import report
from deploy.hardware.targets import LINKS, LinkPreset, _positive
from deploy.presets import CHIPS, PresetError

MESSAGE_BYTES = 4  # one spike message through host memory when time-multiplexing (assumed)

_ASSUMED_HOP = (
    "ASSUMED (no per-hop figure is published): a spike message of about 32 bits over the "
    "board-level parallel I/O at about 10 pJ/bit = 0.32 nJ a chip-to-chip hop, about "
    "100 ns a hop and one message every 10 ns on a link; SANA-FE's own tile hop (3-4 pJ, "
    "4-6.5 ns, Davies et al. 2018) is charged as well")


@dataclass(frozen=True)
class BoardPreset:
    """A system of neuromorphic chips joined chip to chip."""

    name: str  # CLI name, e.g. 'nahuku-32'
    title: str
    chip: str  # chip preset in deploy.presets.CHIPS
    chips: int  # chips on the board
    hop_energy_j: float  # one message crossing one chip-to-chip link
    hop_latency_s: float  # added latency of one chip-to-chip hop
    link_messages_per_s: float  # messages one chip-to-chip link carries a second
    host_link: str  # link preset (deploy.hardware.targets.LINKS) that reloads weights
    simulated: bool  # SANA-FE's per-event figures (Loihi) apply to its chips
    source: str

    def __post_init__(self):
        if self.chip not in CHIPS:
            raise PresetError(f"board {self.name!r}: unknown chip {self.chip!r}")
        if self.host_link not in LINKS:
            raise PresetError(f"board {self.name!r}: unknown host link {self.host_link!r}")
        if not self.source:
            raise PresetError(f"board {self.name!r}: source must name where figures come from")
        _positive(f"board {self.name!r}", chips=self.chips, hop_energy_j=self.hop_energy_j,
                  hop_latency_s=self.hop_latency_s,
                  link_messages_per_s=self.link_messages_per_s)


BOARDS: dict[str, BoardPreset] = {b.name: b for b in (
    BoardPreset(
        "loihi", "one Intel Loihi chip", "loihi", 1, 0.32e-9, 100e-9, 1e8, "10gbe", True,
        "Davies et al., IEEE Micro 38(1), 2018 (128 cores a chip). Host link for weight "
        "reloads: 10 Gb Ethernet (an estimate of a Loihi host interface, "
        "deploy/hardware/targets.py)"),
    BoardPreset(
        "kapoho-bay", "Intel Kapoho Bay (2 Loihi chips, USB)", "loihi", 2, 0.32e-9, 100e-9,
        1e8, "10gbe", True,
        "Davies et al., 'Advancing Neuromorphic Computing With Loihi: A Survey of Results "
        "and Outlook', Proc. IEEE 109(5), 2021: Kapoho Bay, 2 Loihi chips. "
        "Chip-to-chip: " + _ASSUMED_HOP),
    BoardPreset(
        "nahuku-32", "Intel Nahuku (32 Loihi chips)", "loihi", 32, 0.32e-9, 100e-9, 1e8,
        "10gbe", True,
        "Davies et al., Proc. IEEE 109(5), 2021: Nahuku boards of 8 to 32 Loihi chips "
        "(Pohoiki Beach: 64 chips on Nahuku boards). SECONDARY (WikiChip Fuse, 2019): the "
        "chips join gluelessly through parallel I/O on their four sides. Chip-to-chip: "
        + _ASSUMED_HOP),
    BoardPreset(
        "kapoho-point", "Intel Kapoho Point (8 Loihi 2 chips)", "loihi2", 8, 0.32e-9,
        100e-9, 1e8, "10gbe", False,
        "Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2' "
        "(technology brief, 2021): Kapoho Point, 8 Loihi 2 chips; chips tile in 3D. "
        "SECONDARY: press reports of the brief. No per-event figures of Loihi 2 are "
        "published, so it is not simulated (placement only). Chip-to-chip: "
        + _ASSUMED_HOP),
)}


def board(name: str) -> BoardPreset:
    if name not in BOARDS:
        raise PresetError(f"unknown board {name!r}; choose from {', '.join(BOARDS)}")
    return BOARDS[name]


def default_board(chip: str, cores_used: int) -> BoardPreset:
    """One chip when a copy of the STMs fits it, else the largest board of that chip."""
    cands = [b for b in BOARDS.values() if b.chip == chip]
    if cores_used <= CHIPS[chip].cores:
        return min(cands, key=lambda b: b.chips)
    return max(cands, key=lambda b: b.chips)


def placement(cores_used: int, segments: int, branches: int, b: BoardPreset) -> dict:
    """How a copy of the STMs (``cores_used`` cores, all branches) sits on board ``b``:
    ``mode`` 'one chip' (copies side by side on one chip), 'multi-chip' (a copy spans
    chips; whole copies side by side) or 'time-multiplexed' (a copy needs more chips than
    the board has: its partitions run in turn, weights reloaded), with ``why``."""
    per_chip = CHIPS[b.chip].cores
    if cores_used <= 0:
        raise ValueError(f"placement: {cores_used} cores")
    need = math.ceil(cores_used / per_chip)  # chips a copy takes
    seqs = segments * branches
    if need <= b.chips:
        per = per_chip // cores_used  # copies on one chip (when a copy fits one)
        copies = b.chips * per if need == 1 else b.chips // need
        used = (min(b.chips, math.ceil(min(copies, segments) / per)) if need == 1
                else need * min(copies, segments))
        mode = "one chip" if need == 1 and b.chips == 1 else (
            "multi-chip" if need > 1 else "side by side on several chips")
        rounds = math.ceil(segments / copies)
        why = (f"a copy of the STMs takes {cores_used} cores = {need} chip(s) of {per_chip} "
               f"cores; {b.title} holds {copies} cop{'y' if copies == 1 else 'ies'}: "
               f"{rounds} round(s) for {segments} segments x {branches} branches")
        return {"preset": b.name, "title": b.title, "count": used,
                "chips_per_copy": need, "board_chips": b.chips, "copies": copies,
                "rounds": rounds, "mode": mode, "partitions": 1, "why": why,
                "sequences": seqs}
    parts = math.ceil(need / b.chips)
    why = (f"a copy of the STMs takes {cores_used} cores = {need} chips of {per_chip} cores, "
           f"{b.title} has {b.chips}: time-multiplexed in {parts} partitions, each loaded "
           "once a video (weights and neuron state over the host link), every sequence run "
           "through it, spikes between partitions held in host memory")
    return {"preset": b.name, "title": b.title, "count": b.chips, "chips_per_copy": need,
            "board_chips": b.chips, "copies": 0, "rounds": seqs, "mode": "time-multiplexed",
            "partitions": parts, "why": why, "sequences": seqs}


def interchip(boundary_messages, chip_hops, b: BoardPreset) -> dict:
    """Chip-to-chip cost of one sequence: ``boundary_messages`` (steps, boundaries) and
    ``chip_hops`` (steps,) from the neurocore simulation. Per step the busiest link's
    messages at the link's rate, plus one hop latency per boundary when any message
    crosses; energy = hops x hop energy."""
    import numpy as np

    bm = np.asarray(boundary_messages, dtype=float)
    hops = np.asarray(chip_hops, dtype=float)
    if bm.size == 0:
        per_step = np.zeros(len(hops))
    else:
        per_step = (bm.max(1) / b.link_messages_per_s
                    + (bm.sum(1) > 0) * bm.shape[1] * b.hop_latency_s)
    return {"messages": float(bm.sum()), "hops": float(hops.sum()),
            "time_s": float(per_step.sum()), "time_s_per_step": per_step.tolist(),
            "energy_j": float(hops.sum() * b.hop_energy_j)}


def spiking_on_board(branches: dict[str, dict], segments: int, cores_used: int,
                     b: BoardPreset, reload_bits: int) -> dict:
    """The spiking stage of a video on board ``b`` from each branch's
    :func:`deploy.hardware.report.simulate_branch` result (its ``chip_traffic`` per
    sequence): placement, chip-to-chip traffic (multi-chip) or weight reloads and spikes
    through host memory (time-multiplexed), added to the simulated times and energies.
    ``reload_bits``: synaptic memory + neuron state of a copy (the mapping's)."""
    if not b.simulated:
        raise PresetError(f"board {b.name!r} ({b.title}): its chip has no published "
                          "per-event figures; the neurocore simulation models Loihi "
                          "(SANA-FE's loihi.yaml): choose a Loihi board "
                          f"({', '.join(n for n, p in BOARDS.items() if p.simulated)})")
    pl = placement(cores_used, segments, len(branches), b)
    side = pl["mode"] != "time-multiplexed"
    st = report.spiking_stage(branches, segments,
                              {"fits": True, "sequences_per_chip": pl["copies"]} if side
                              else {"fits": False})
    ic = {m: [interchip(bm, h, b) for bm, h in zip(br["chip_traffic"]["boundary_messages"],
                                                    br["chip_traffic"]["chip_hops"])]
          for m, br in branches.items()}
    ic_t = {m: sum(v["time_s"] for v in seqs) / len(seqs) for m, seqs in ic.items()}
    ic_e = {m: sum(v["energy_j"] for v in seqs) / len(seqs) for m, seqs in ic.items()}
    msgs = sum(sum(v["messages"] for v in seqs) / len(seqs) for seqs in ic.values())
    hops = sum(sum(v["hops"] for v in seqs) / len(seqs) for seqs in ic.values())
    extra = {"interchip": None, "reload": None}
    if side:
        add_t = pl["rounds"] * max(ic_t.values())
        add_e = segments * sum(ic_e.values())
        extra["interchip"] = {
            "messages_per_video": segments * msgs, "hops_per_video": segments * hops,
            "time_s": add_t, "energy_j": add_e, "label": "estimated", "source": b.source}
        st["placement"] = f"{pl['mode']} on {b.title}: {pl['why']}"
    else:
        link: LinkPreset = LINKS[b.host_link]
        nbytes = math.ceil(reload_bits / 8)
        spill = round(segments * msgs) * MESSAGE_BYTES * 2  # out to the host and back
        add_t = (pl["partitions"] * link.latency_s + (nbytes + spill) / link.bandwidth)
        add_e = 8 * (nbytes + spill) * link.energy_per_bit_j
        extra["reload"] = {
            "partitions": pl["partitions"], "weight_state_bytes": nbytes,
            "spilled_messages": round(segments * msgs), "spilled_bytes": spill,
            "link": link.name, "time_s": add_t, "energy_j": add_e,
            "label": "estimated (link preset; SRAM writes not counted)",
            "source": link.source}
        st["placement"] = f"time-multiplexed on {b.title}: {pl['why']}"
    st["time_s"] += add_t
    st["energy_j"] += add_e
    st["chips"] = pl | extra
    return st
