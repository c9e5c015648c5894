"""deploy/hardware/sweep.py: every combination of presets costed from one recorded
simulation; points by hand, the Pareto flags, combinations that cannot run, nothing to
vary."""
import pytest

from deploy.hardware import boards, sweep
from deploy.hardware.dense.roofline import DenseLayer
from deploy.hardware.targets import accelerator, link


def _branch(seq_t, seq_e):
    return {"per_sequence": {"time_s": {"mean": seq_t}, "energy_j": {"mean": seq_e}},
            "per_step": {k: [seq_t if k == "time_s" else seq_e]
                         for k in ("time_s", "energy_j", "synapse_j", "dendrite_j",
                                   "soma_j", "network_j")},
            "chip_traffic": {"boundary_messages": [[[]]], "chip_hops": [[0]]}}


BRANCHES = {"mv": _branch(1e-3, 1e-3), "r": _branch(2e-3, 2e-3)}
LAYERS = [DenseLayer("fc", macs=10**9, weight_values=10**6, activation_values=10**4)]


def test_a_point_by_hand():
    a, lk = accelerator("a100-sxm"), link("pcie4-x16")
    q = sweep.point(BRANCHES, 4, 50, 8000, LAYERS, 10**6, boards.board("loihi"), a, "fp16",
                    lk, 4)
    # spiking: 128 // 50 = 2 copies on the chip, 2 rounds x the slower branch (2 ms)
    sp_t, sp_e = 2 * 2e-3, 4 * 3e-3
    br_t, br_e = lk.latency_s + 1e6 / lk.bandwidth, 8e6 * lk.energy_per_bit_j
    rate = a.peak_ops["fp16"] / 2
    # a batch of 4: weights once; the preset's achieved fraction and launch floor
    de_t = max(4e9 / (rate * a.achieved_fraction), 2 * (1e6 + 4e4) / a.memory_bw) + a.launch_s
    assert q["latency_s"] == pytest.approx(sp_t + br_t + de_t + 3 * max(sp_t, br_t))
    assert q["energy_j"] == pytest.approx(sp_e + br_e + de_t * a.board_power_w / 4)
    assert q["throughput_vps"] == pytest.approx(1 / max(sp_t, br_t, de_t / 4))
    assert (q["board"], q["accelerator"], q["precision"], q["link"], q["batch"]) == (
        "loihi", "a100-sxm", "fp16", "pcie4-x16", 4)


def test_every_combination_pareto_and_skipped():
    axes = sweep.Axes([boards.board("loihi"), boards.board("kapoho-point")],
                      [accelerator("h100-sxm"), accelerator("tianjic-ann")], ["fp16", "int8"],
                      [link("pcie4-x16")], [1, 8])
    res = sweep.evaluate(BRANCHES, 4, 50, 8000, LAYERS, 10**6, axes)
    assert axes.size() == 16
    # kapoho-point (Loihi 2: no per-event figures) and tianjic-ann fp16 cannot run
    assert len(res["points"]) == 6 and len(res["skipped"]) == 10
    assert all(s["why"] for s in res["skipped"])
    front = [q for q in res["points"] if q["pareto"]]
    assert front
    for q in res["points"]:
        dominated = any(o["latency_s"] <= q["latency_s"] and o["energy_j"] <= q["energy_j"]
                        and o is not q and (o["latency_s"], o["energy_j"])
                        != (q["latency_s"], q["energy_j"]) for o in res["points"])
        assert q["pareto"] == (not dominated)
    assert {"board", "accelerator", "precision", "link", "batch", "latency_s",
            "energy_j"} <= set(res["points"][0])
    text = sweep.table(res["points"])
    assert len(text.splitlines()) == 7 and "tianjic-ann" in text


def test_nothing_to_vary_or_nothing_given_is_refused():
    one = ([boards.board("loihi")], [accelerator("h100-sxm")], ["fp16"], [link("10gbe")], [1])
    with pytest.raises(ValueError, match="nothing to vary"):
        sweep.Axes(*one)
    with pytest.raises(ValueError, match="no links"):
        sweep.Axes(one[0], one[1], ["fp16", "int8"], [], [1])
    with pytest.raises(ValueError, match="batches"):
        sweep.Axes(one[0], one[1], ["fp16", "int8"], one[3], [0])
