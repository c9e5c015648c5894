"""SANA-FE's neurocore simulation of the STM (deploy/chip_neuro.py) against Lava fixed point:
spikes per layer equal Lava's, whatever the placement. Needs the `[chip]` extra."""
import sys

import numpy as np
import pytest
import torch

import neuro  # noqa: F401  (before any lava import)
from deploy import chip_neuro as cn
from neuro.export import export_stm, read_network
from neuro.stm import STM, STMConfig
from neuro.verify import random_mv


def test_missing_sanafe_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sanafe", None)  # import sanafe -> ImportError
    with pytest.raises(cn.MissingExtra) as e:
        cn.require_sanafe()
    assert "\n" not in str(e.value) and "pip install -e '.[chip]'" in str(e.value)


@pytest.mark.parametrize("shape", [(2, 7, 9), (16, 12, 10)])
def test_edges_are_the_padded_conv(shape):
    """Scatter-adding weights over the edges equals torch's padded conv (odd sizes,
    strides 1 and 2)."""
    rng = np.random.default_rng(0)
    c_in, h, w = shape
    x = rng.integers(0, 2, (c_in, h, w)).astype(np.float64)
    for stride in (1, 2):
        wt = rng.integers(-5, 6, (3, c_in, 3, 3)).astype(np.float64)
        ref = torch.nn.functional.conv2d(torch.tensor(x)[None], torch.tensor(wt),
                                         stride=stride, padding=1)[0].numpy()
        src, dst, ww = cn.edges(shape, wt, stride, 1, ref.shape)
        out = np.zeros(ref.size)
        np.add.at(out, dst, ww * x.ravel()[src])
        assert np.array_equal(out.reshape(ref.shape), ref)
        assert len(src) == len(set(zip(src.tolist(), dst.tolist())))  # no duplicate edge


@pytest.mark.slow
@pytest.mark.parametrize("seed,hw,placement", [
    (0, (13, 17), "default"), (1, (13, 17), "channel-major"), (1, (24, 24), "default")])
def test_sanafe_spikes_equal_lava(seed, hw, placement, tmp_path, randomise_neurons):
    pytest.importorskip("sanafe", reason="SANA-FE is an optional extra: pip install -e '.[chip]'")
    from neuro.runner import LavaRunner

    torch.manual_seed(seed)
    stm = STM(STMConfig(in_channels=2, strides=(1, 1, 1)))
    randomise_neurons(stm, seed)
    path = export_stm(stm, tmp_path / "stm.h5", hw)
    net = read_network(path)
    T, n = 5, 2
    x = random_mv(n, 2, *hw, T, seed)
    with LavaRunner(path, T, record=True, conv="im2col") as r:
        lava = r.run(x)
    tilings = None
    if placement == "channel-major":  # one channel's whole map per core
        tilings = [cn.Tiling(1, s.shape[1], s.shape[2]) for s in net.layers]
    sim = cn.build(net, tilings)
    assert sim.saturation_risk == []
    for i in range(n):  # the chip is reused: reset between sequences must be exact
        out = cn.simulate(sim, lava.spikes[0][i], record=True)
        for k in (1, 2):  # layers 2 and 3
            ref = lava.spikes[k][i]
            assert ref.sum() > 0, f"layer {k + 1} never spiked: a weak test"
            assert np.array_equal(out.spike_maps[k - 1], ref), (
                f"layer {k + 1}, sequence {i}: {(out.spike_maps[k - 1] != ref).sum()} "
                f"(neuron, step) pairs differ of {ref.size}")
            assert np.array_equal(out.spikes[k - 1], ref.reshape(-1, T).sum(0))
        steps = T + len(net.layers) - 1
        assert all(len(v) == steps for v in out.per_step.values())
        e = out.per_step
        parts = sum(np.array(e[p]) for p in ("synapse_energy", "dendrite_energy",
                                              "soma_energy", "network_energy"))
        assert np.allclose(parts, e["total_energy"]) and min(e["sim_time"]) > 0
        assert out.messages[0].sum() >= lava.spikes[0][i].sum()  # >= 1 core per spike
