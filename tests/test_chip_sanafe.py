"""SANA-FE's neurocore simulation of the STM (deploy/hardware/neurocores/simulation.py) against Lava
fixed point: spikes per layer equal Lava's, whatever the placement. Needs the `[chip]` extra."""
import sys

import numpy as np
import pytest
import torch

import neuro  # noqa: F401  (before any lava import)
from deploy.hardware.neurocores import simulation as cn
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
    (0, (13, 17), "default"), (1, (13, 17), "channel-major"), (1, (24, 24), "default"),
    (0, (24, 24), "channel-major")])
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


@pytest.mark.parametrize("plain,inputs,tiles", [
    (40, 5, 32),  # the stock 8 x 4 mesh: 28 LIF tiles, 4 input tiles
    (301, 33, 88)])  # 76 + 9 tiles needed: 11 rows of 8, the spare ones LIF tiles
def test_generated_architecture_keeps_sanafe_figures(plain, inputs, tiles):
    """The description generated from the installed SANA-FE's loihi.yaml, loaded by
    SANA-FE, has the stock file's units with the stock figures on every core; only the
    input units moved (to the input tiles) and the mesh grew by whole rows."""
    sf = pytest.importorskip("sanafe", reason="SANA-FE is an optional extra: pip install "
                                              "-e '.[chip]'")
    stock = sf.load_loihi()
    ref = {u.name: u.model_info.model_attributes for u in stock.cores()[0].pipeline_hw}
    arch = cn.load_arch(plain, inputs)
    cores = arch.cores()
    lif = [c for c in cores if c.name.startswith("loihi_core[")]
    inp = [c for c in cores if c.name.startswith("loihi_input_core[")]
    assert len(lif) + len(inp) == len(cores) and len(lif) >= plain and len(inp) >= inputs
    assert len(arch.tiles) == tiles and len(cores) == 4 * tiles
    assert len(inp) == 4 * max(4, -(-inputs // 4))
    for core, want in ((lif[0], {k: v for k, v in ref.items() if "inputs" not in k}),
                       (lif[-1], {k: v for k, v in ref.items() if "inputs" not in k}),
                       (inp[-1], ref)):
        got = {u.name: u.model_info.model_attributes for u in core.pipeline_hw}
        assert got == want, core.name
        assert [a.name for a in core.axon_in] == [a.name for a in stock.cores()[0].axon_in]


def test_unexpected_sanafe_layout_is_one_line_naming_the_file():
    from deploy.hardware.neurocores import loihi_arch as chip_arch

    with pytest.raises(chip_arch.LayoutError) as e:
        chip_arch.parse("architecture:\n  attributes:\n    width: 8\n  tile:\n", "x/loihi.yaml")
    msg = str(e.value)
    assert "\n" not in msg and "x/loihi.yaml" in msg and "height" in msg
    assert "sanafe==2.2.9" in msg
    pytest.importorskip("sanafe")
    text = cn.stock_loihi().origin
    stock = open(text).read().replace("loihi_inputs[0..1023]", "loihi_units[0..1023]")
    with pytest.raises(chip_arch.LayoutError, match="input soma entry"):
        chip_arch.parse(stock, text)
