"""deploy/hardware/boards.py: the STMs on a multi-chip board or one chip time-multiplexed,
chip-to-chip traffic counted by the neurocore simulation, costs by hand."""
import numpy as np
import pytest

from deploy.hardware import boards
from deploy.presets import PresetError


def test_placement_by_hand():
    nahuku, one = boards.board("nahuku-32"), boards.board("loihi")
    p = boards.placement(200, 3, 2, nahuku)  # 200 cores: 2 chips of 128 a copy
    assert (p["mode"], p["chips_per_copy"], p["copies"], p["rounds"], p["count"]) == (
        "multi-chip", 2, 16, 1, 6)  # 3 segments -> 3 copies in use -> 6 chips
    p = boards.placement(392, 8, 2, nahuku)  # base at 224: 4 chips a copy, 8 copies
    assert (p["copies"], p["rounds"], p["count"]) == (8, 1, 32)
    p = boards.placement(46, 3, 2, one)  # the demo's tiny: 2 copies on one chip
    assert (p["mode"], p["copies"], p["rounds"], p["count"]) == ("one chip", 2, 2, 1)
    p = boards.placement(392, 8, 2, one)
    assert (p["mode"], p["partitions"], p["count"], p["copies"]) == ("time-multiplexed", 4,
                                                                     1, 0)
    assert "4 chips" in p["why"] and "has 1" in p["why"]


def test_interchip_by_hand():
    b = boards.board("nahuku-32")
    ic = boards.interchip([[3, 1], [0, 0], [5, 2]], [5, 0, 9], b)
    # per step: busiest link / 1e8 msgs/s + 2 boundaries x 100 ns when anything crosses
    assert ic["time_s"] == pytest.approx(3e-8 + 2e-7 + 5e-8 + 2e-7)
    assert ic["energy_j"] == pytest.approx(14 * 0.32e-9)
    assert (ic["messages"], ic["hops"]) == (11, 14)


def _branch(seq_t, seq_e, bm, hops, steps=2):
    return {"per_sequence": {"time_s": {"mean": seq_t}, "energy_j": {"mean": seq_e}},
            "per_step": {k: [seq_t / steps if k == "time_s" else seq_e / steps] * steps
                         for k in ("time_s", "energy_j", "synapse_j", "dendrite_j",
                                   "soma_j", "network_j")},
            "chip_traffic": {"boundary_messages": [bm], "chip_hops": [hops]}}


def test_spiking_on_board_adds_chip_traffic_or_reloads():
    br = {"mv": _branch(1.0, 10.0, [[4], [0]], [4, 0]),
          "r": _branch(2.0, 20.0, [[0], [6]], [0, 6])}
    b = boards.board("nahuku-32")
    st = boards.spiking_on_board(br, 8, 200, b, reload_bits=8000)
    ic_mv, ic_r = 4e-8 + 1e-7, 6e-8 + 1e-7  # busiest link + 1 boundary x 100 ns
    assert st["time_s"] == pytest.approx(1 * 2.0 + max(ic_mv, ic_r))  # 1 round, slowest
    assert st["energy_j"] == pytest.approx(8 * 30.0 + 8 * 10 * 0.32e-9)
    ch = st["chips"]
    assert (ch["preset"], ch["count"], ch["mode"]) == ("nahuku-32", 16, "multi-chip")
    assert ch["interchip"]["messages_per_video"] == 8 * 10 and ch["reload"] is None
    assert "multi-chip on Intel Nahuku" in st["placement"]

    one = boards.board("loihi")
    st = boards.spiking_on_board(br, 8, 200, one, reload_bits=8000)
    link = boards.LINKS[one.host_link]
    spill = 8 * 10 * boards.MESSAGE_BYTES * 2
    want_t = 8 * 3.0 + 2 * link.latency_s + (1000 + spill) / link.bandwidth
    assert st["time_s"] == pytest.approx(want_t)
    assert st["energy_j"] == pytest.approx(240 + 8 * (1000 + spill) * link.energy_per_bit_j)
    assert st["chips"]["mode"] == "time-multiplexed" and st["chips"]["interchip"] is None
    assert st["chips"]["reload"]["weight_state_bytes"] == 1000


def test_unknown_or_unsimulated_board_is_one_line():
    with pytest.raises(PresetError, match="unknown board 'x'; choose from loihi"):
        boards.board("x")
    with pytest.raises(PresetError) as e:
        boards.spiking_on_board({}, 1, 10, boards.board("kapoho-point"), 0)
    assert "\n" not in str(e.value) and "no published per-event figures" in str(e.value)


def test_a_mapping_spanning_two_chips_counts_crossings_by_hand(tmp_path):
    """Layers 2 and 3 of an STM at 16x16 (16 channels), one channel's 8x8 quarter per core:
    64 + 64 cores, a mesh of 5 tile rows = 2 chips (rows 0-3 and row 4). Sorted chip by
    chip, cores 0..115 sit on chip 0 and 116..127 on chip 1: layer 3's channels 13-15.
    Each layer-2 spike then crosses once per layer-3 band of channels 13-15 reading it:
    3 x (2 if y in {7, 8} else 1) x (2 if x in {7, 8} else 1); nothing else crosses."""
    pytest.importorskip("sanafe", reason="SANA-FE is an optional extra")
    import torch

    from deploy.hardware.neurocores import simulation
    from neuro.export import export_stm, read_network
    from neuro.stm import STM, STMConfig

    torch.manual_seed(0)
    net = read_network(export_stm(STM(STMConfig(in_channels=2, strides=(1, 1, 1))),
                                  tmp_path / "stm.h5", (16, 16)))
    assert [tuple(s.shape) for s in net.layers][1:] == [(16, 16, 16), (16, 16, 16)]
    sim = simulation.build(net, [simulation.Tiling(1, 8, 8)] * 3)
    assert (sim.cores_used, sim.chips) == (128, 2)
    nb = np.where(np.isin(np.arange(16), (7, 8)), 2, 1)
    want = np.broadcast_to(3 * nb[:, None] * nb[None, :], (16, 16, 16)).ravel()
    assert np.array_equal(sim._crossings[1][:, 0], want)
    assert np.array_equal(sim._chip_hops[1], want)
    assert not sim._crossings[0].any() and not sim._crossings[2].any()
    s1 = (np.random.default_rng(1).random((*net.layers[0].shape, 4)) < 0.5).astype(np.int8)
    out = simulation.simulate(sim, s1, record=True)
    l2 = out.spike_maps[0]  # (16, 16, 16, T)
    assert l2.sum() > 0
    per_t = (l2.reshape(-1, 4) * want[:, None]).sum(0)  # layer 2 leaves at step t + 1
    assert out.boundary_messages[:, 0].tolist() == [0, *per_t.tolist(), 0]
    assert out.chip_hops.tolist() == [0, *per_t.tolist(), 0]
