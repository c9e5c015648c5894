"""Intervals on the per-video figures: a bootstrap over what was sampled, and SANA-FE's
published calibration error as a band.

- Each stage gives ``B`` bootstrap replicates of its time and energy per video
  (:func:`replicates`: the statistic recomputed on the sampled videos or sequences drawn
  with replacement; a deterministic estimate gives ``B`` copies of itself). The stage's
  95 % interval is the 2.5 and 97.5 percentiles of its replicates; the per-video
  latency, throughput and energy intervals come from the *same* replicate index summed
  over stages (percentile bootstrap, Efron & Tibshirani 1993, ch. 13).
- SANA-FE's calibration: the authors report Loihi energy within 12 % and latency within
  25 % of the chip on three applications (IEEE TCAD 2025; shared/notes/chip.md). Not a
  sampling error: carried apart, as a band of +-those fractions on the simulated part.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

SANAFE_CALIBRATION = {
    "energy": 0.12, "latency": 0.25,
    "source": "SANA-FE's authors: Loihi energy within 12 %, latency within 25 % of the chip "
              "on three applications (IEEE TCAD 2025)",
    "label": "published calibration error of the simulator (a band, not a sampling interval)"}
DRAWS = 2000  # bootstrap replicates
LEVEL = 0.95


def replicates(values, stat: Callable = np.median, draws: int = DRAWS,
               seed: int = 0) -> np.ndarray:
    """(draws,) ``stat`` of ``values`` resampled with replacement (one value: that value)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("bootstrap of no values")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(draws, v.size))
    return np.apply_along_axis(stat, 1, v[idx])


def constant(value: float, draws: int = DRAWS) -> np.ndarray:
    """The replicates of a deterministic estimate."""
    return np.full(draws, float(value))


def bounds(reps: np.ndarray, level: float = LEVEL) -> list[float]:
    """[low, high] percentile interval of the replicates."""
    a = (1 - level) / 2
    lo, hi = np.quantile(reps, [a, 1 - a])
    return [float(lo), float(hi)]


def interval(time_reps: np.ndarray, energy_reps: np.ndarray, method: str) -> dict:
    """A stage's ``interval``: 95 % bounds of its time and energy, and how they came."""
    return {"time_s": bounds(time_reps), "energy_j": bounds(energy_reps),
            "level": LEVEL, "method": method}


def band(time_s: float, energy_j: float, calib: dict = SANAFE_CALIBRATION) -> dict:
    """+-the simulator's calibration error around a simulated time and energy."""
    return {"time_s": [time_s * (1 - calib["latency"]), time_s * (1 + calib["latency"])],
            "energy_j": [energy_j * (1 - calib["energy"]), energy_j * (1 + calib["energy"])],
            "source": calib["source"], "label": calib["label"]}


def spiking_replicates(branches: dict, time_s: float, energy_j: float, draws: int = DRAWS,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Replicates of the spiking stage from each branch's per-sequence times and energies
    (``per_sequence.{time_s,energy_j}.values``): the stage's figures scaled by the
    resampled mean of each branch relative to its mean, weighted by the branch's share
    (exact for branches in turn and for energy; for branches side by side it scales the
    sum, where the stage takes the slowest)."""
    t_rep, e_rep = np.zeros(draws), np.zeros(draws)
    t_sum = sum(b["per_sequence"]["time_s"]["mean"] for b in branches.values())
    e_sum = sum(b["per_sequence"]["energy_j"]["mean"] for b in branches.values())
    for k, b in enumerate(branches.values()):
        ps = b["per_sequence"]
        t_rep += replicates(ps["time_s"]["values"], np.mean, draws, seed + k)
        e_rep += replicates(ps["energy_j"]["values"], np.mean, draws, seed + k)
    return time_s * t_rep / t_sum, energy_j * e_rep / e_sum


def per_video(stage_reps: dict[str, tuple[np.ndarray, np.ndarray]],
              pipelined: dict[str, float] | None = None) -> dict:
    """95 % intervals of latency (sum of stage times), throughput (1 / the slowest
    stage, at its pipelined time when given) and energy (sum), replicate by replicate."""
    t = np.stack([r[0] for r in stage_reps.values()])  # (stages, draws)
    e = np.stack([r[1] for r in stage_reps.values()])
    slow = t.copy()
    for i, name in enumerate(stage_reps):
        if pipelined and name in pipelined:
            slow[i] = t[i] * pipelined[name]  # per-video time when videos are batched
    return {"latency_s": bounds(t.sum(0)), "throughput_vps": bounds(1 / slow.max(0)),
            "energy_j": bounds(e.sum(0)), "level": LEVEL,
            "method": "percentile bootstrap, the stages' replicates summed per draw"}


def attach(rep: dict, host_reps: dict, dense_reps: tuple, seed: int = 0) -> dict:
    """Give every stage of ``rep`` (:func:`deploy.hardware.report.report`) an
    ``interval``, the spiking stage SANA-FE's calibration band, and ``per_video`` its
    intervals and band; ``host_reps``: {stage: (time, energy) replicates} of the
    measured host stages, ``dense_reps`` the dense stage's."""
    n = rep["neuro"]
    sp = spiking_replicates(n["branches"], n["time_s"], n["energy_j"], seed=seed)
    reps = {}
    for s in rep["stages"]:
        name = s["name"]
        if name in host_reps:
            reps[name] = host_reps[name]
        elif name == "spiking":
            reps[name] = sp
            k = {b["sequences_simulated"] for b in n["branches"].values()}
            s["interval"] = interval(*sp, f"bootstrap of the mean over the {max(k)} sequences "
                                          "drawn per branch (seeded)")
            s["calibration"] = band(s["time_s"], s["energy_j"])
        elif name == "bridge":
            reps[name] = (constant(s["time_s"]), constant(s["energy_j"]))
            s["interval"] = {"time_s": [s["time_s"]] * 2, "energy_j": [s["energy_j"]] * 2,
                             "method": "none: a deterministic estimate from the link "
                                       "preset (bytes are exact)"}
        elif name == "dense":
            reps[name] = dense_reps
            s["interval"] = rep["dense"]["interval"]
    piped = {s["name"]: s["pipelined_time_s"] / s["time_s"] for s in rep["stages"]
             if s.get("pipelined_time_s")}
    pv = rep["per_video"]
    pv["interval"] = per_video(reps, piped)
    lo_t = pv["latency_s"] - rep_stage(rep, "spiking")["time_s"] * SANAFE_CALIBRATION["latency"]
    hi_t = pv["latency_s"] + rep_stage(rep, "spiking")["time_s"] * SANAFE_CALIBRATION["latency"]
    e_sp = rep_stage(rep, "spiking")["energy_j"] * SANAFE_CALIBRATION["energy"]
    pv["calibration"] = {"latency_s": [lo_t, hi_t],
                         "energy_j": [pv["energy_j"] - e_sp, pv["energy_j"] + e_sp],
                         "label": "the spiking stage moved by SANA-FE's calibration error, "
                                  "the other stages held"}
    rep["calibration"] = SANAFE_CALIBRATION
    return rep


def rep_stage(rep: dict, name: str) -> dict:
    return next(s for s in rep["stages"] if s["name"] == name)
