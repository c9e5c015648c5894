"""The profiler's counting: exact fan-out ACs against independent counts, torch-sourced
against Lava-sourced spikes, and the energy presets."""
import json

import pytest
import torch
import torch.nn.functional as F

from deploy.energy.profiler import (
    ConvGeometry,
    Profile,
    count_layer,
    count_stm,
    fan_out,
    lava_counts,
    stm_counts,
    stm_geometry,
    video_rows,
)
from deploy.presets import ENERGY_PRESETS, EnergyPreset, PresetError, energy_preset
from neuro.stm import STM, STMConfig


def _spikes(shape, rate, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < rate).float()


def _transposed_count(x, g: ConvGeometry) -> int:
    """Sinabs' way: a transposed conv of all-ones output maps with all-ones weights gives
    each input position's connection count; ACs = sum(spikes x connections)."""
    (h, w), (ho, wo) = g.in_hw, g.out_hw
    op = [n - ((m - 1) * g.stride - 2 * g.padding + g.kernel) for n, m in ((h, ho), (w, wo))]
    conn = F.conv_transpose2d(torch.ones(1, g.c_out, ho, wo, dtype=torch.float64),
                              torch.ones(g.c_out, g.c_in, g.kernel, g.kernel, dtype=torch.float64),
                              stride=g.stride, padding=g.padding, output_padding=op)
    assert conn.shape[-2:] == (h, w)
    return int((x.double() * conn[..., None]).sum())


def _forward_count(x, g: ConvGeometry) -> int:
    """NeuroBench's way: run the layer with all-ones weights on the spikes and sum the
    outputs: the number of (spike, weight) pairs reaching a valid output."""
    xs = x.double().permute(0, 4, 1, 2, 3).reshape(-1, g.c_in, *g.in_hw)
    out = F.conv2d(xs, torch.ones(g.c_out, g.c_in, g.kernel, g.kernel, dtype=torch.float64),
                   stride=g.stride, padding=g.padding)
    return int(out.sum())


def _brute_count(x, g: ConvGeometry) -> int:
    """Every spike, every kernel tap, every output channel, checked one by one."""
    (ho, wo), total = g.out_hw, 0
    for _n, _c, y, xx, _t in torch.nonzero(x).tolist():
        for ky in range(g.kernel):
            for kx in range(g.kernel):
                oy, ox = y + g.padding - ky, xx + g.padding - kx
                if oy % g.stride or ox % g.stride:
                    continue
                oy, ox = oy // g.stride, ox // g.stride
                total += g.c_out * (0 <= oy < ho and 0 <= ox < wo)
    return total


@pytest.mark.parametrize("hw,c_in,c_out,k,stride,rate,seed", [
    ((13, 9), 3, 5, 3, 1, 0.2, 0), ((13, 9), 3, 5, 3, 2, 0.2, 1), ((12, 7), 2, 4, 5, 2, 0.5, 2),
    ((7, 11), 4, 3, 3, 2, 0.05, 3), ((5, 5), 1, 2, 5, 1, 0.9, 4), ((28, 27), 8, 16, 3, 1, 0.1, 5),
    ((9, 6), 2, 3, 1, 2, 0.3, 6), ((10, 10), 2, 2, 3, 3, 0.4, 7)])
def test_acs_equal_independent_exact_counts(hw, c_in, c_out, k, stride, rate, seed):
    g = ConvGeometry("l", c_in, c_out, k, stride, k // 2, hw, analog_input=False)
    x = _spikes((3, c_in, *hw, 4), rate, seed)
    out = torch.zeros(3, c_out, *g.out_hw, 4)
    got = count_layer(g, x, out)
    assert got.synops == _transposed_count(x, g) == _forward_count(x, g)
    if x.numel() < 5000:
        assert got.synops == _brute_count(x, g)
    assert got.input_events == int(x.sum()) and got.kind == "ac" and got.ops == got.synops
    top = c_out * (-(-k // stride)) ** 2  # an input reaches ceil(k / s)^2 outputs at most
    assert int(fan_out(g).max()) <= top
    if stride == 1 and min(hw) >= k:
        assert int(fan_out(g).max()) == top


def test_rate_times_dense_overestimates_at_the_borders():
    """All-ones input: exact ACs < dense MACs (padding taps touch no spike), e.g. ~3.5 % at
    56x56 with a 3x3 kernel; the paper's reading (rate x dense) gives the dense count."""
    g = ConvGeometry("l", 2, 4, 3, 1, 1, (56, 56), analog_input=False)
    x = torch.ones(1, 2, 56, 56, 2)
    c = count_layer(g, x, torch.zeros(1, 4, 56, 56, 2))
    assert c.synops == _forward_count(x, g) < c.dense_macs == c.paper_acs
    assert 0.02 < 1 - c.synops / c.dense_macs < 0.05


def test_analog_layer_counts_dense_macs_and_effective_events():
    g = ConvGeometry("l", 2, 3, 3, 2, 1, (9, 9), analog_input=True)
    x = torch.randn(2, 2, 9, 9, 3) * _spikes((2, 2, 9, 9, 3), 0.3, 0)
    c = count_layer(g, x, torch.zeros(2, 3, 5, 5, 3))
    assert c.kind == "mac" and c.ops == c.dense_macs == 2 * 3 * (3 * 5 * 5) * 2 * 9
    assert c.synops == _forward_count((x != 0).float(), g)  # NeuroBench's Effective_MACs
    assert c.paper_acs == pytest.approx(c.dense_macs * float((x != 0).float().mean()))


def test_bad_maps_are_clear_errors():
    g = ConvGeometry("stm.mv.2", 2, 3, 3, 1, 1, (5, 5), analog_input=False)
    with pytest.raises(ValueError, match="stm.mv.2: input maps"):
        count_layer(g, torch.zeros(1, 3, 5, 5, 2), torch.zeros(1, 3, 5, 5, 2))
    with pytest.raises(ValueError, match="must be 0/1"):
        count_layer(g, torch.full((1, 2, 5, 5, 2), 0.5), torch.zeros(1, 3, 5, 5, 2))


@pytest.mark.parametrize("quant", ["float", "qat"])
def test_stm_counts_match_the_models_own_spikes(quant, randomise_neurons):
    torch.manual_seed(1)
    stm = STM(STMConfig(in_channels=2, widths=(4, 6, 5), strides=(2, 1, 1), quant=quant,
                        weight_scale=10.0))
    randomise_neurons(stm, 1)
    x = torch.randn(3, 2, 11, 9, 5) * _spikes((3, 1, 11, 9, 5), 0.4, 2)
    counts = stm_counts(stm, x)
    out = stm(x, return_spike_maps=True)
    assert [c.geometry.name for c in counts] == ["stm.1", "stm.2", "stm.3"]
    msgs = torch.round(x.double() * 2 ** stm.cfg.input_frac_bits).clamp(-128, 127)
    assert counts[0].input_events == int((msgs != 0).sum()) < x.numel()
    assert counts[0].synops == _forward_count((msgs != 0).float(), counts[0].geometry)
    for k, c in enumerate(counts):
        assert c.out_spikes == out.spikes[k].sum(0).long().tolist()  # the STM's own tally
        assert sum(c.out_spikes) > 0, "a layer never spiked: a weak test"
        if k:
            prev = out.spike_maps[k - 1]
            assert c.input_events == int(prev.sum())
            assert c.synops == _transposed_count(prev, c.geometry)


def test_profile_mean_min_max_and_energy():
    cfg = STMConfig(in_channels=2, widths=(3, 4, 4))
    geo = stm_geometry(cfg, (9, 9), "stm.mv")
    from ann.config import VARIANTS
    dense = VARIANTS["tiny"]
    prof = Profile(views="3x1")
    for seed, rate in ((0, 0.1), (1, 0.4)):
        maps = [_spikes((3, g.c_out, *g.out_hw, 4), rate, seed + i) for i, g in enumerate(geo)]
        x = torch.randn(3, 2, 9, 9, 4)
        prof.add(f"v{seed}", video_rows({"mv": count_stm(geo, x, maps)}, dense, 1))
    p = ENERGY_PRESETS["45nm-fp32"]
    rep = prof.report(p)
    json.dumps(rep)
    pv = rep["per_video"]
    assert pv["acs"]["min"] < pv["acs"]["mean"] < pv["acs"]["max"]
    assert pv["macs"]["min"] == pv["macs"]["max"]  # MACs do not depend on the spikes
    assert pv["energy_j"]["mean"] == pytest.approx(
        pv["macs"]["mean"] * 4.6e-12 + pv["acs"]["mean"] * 0.9e-12)
    layers = {r["name"]: r for r in rep["layers"]}
    assert {"stm.mv.1", "stm.mv.2", "stm.mv.3", "bridge.mv", "encoder.unified"} <= set(layers)
    assert layers["stm.mv.1"]["kind"] == "mac" and layers["stm.mv.2"]["kind"] == "ac"
    assert layers["bridge.mv"]["partition"] == "bridge"
    assert layers["bridge.mv"]["ops"] == 3 * 4 * 5 * 5  # 3 sequences x C x H' x W'
    assert sum(r["energy_j"] for r in rep["layers"]) == pytest.approx(pv["energy_j"]["mean"])
    assert rep["paper_row"]["energy_j"] == 0.734
    loihi = prof.report(ENERGY_PRESETS["loihi"])
    l1 = {r["name"]: r for r in loihi["layers"]}["stm.mv.1"]
    assert l1["energy_j"] == pytest.approx(l1["synops"] * 23.6e-12 + l1["neuron_updates"] * 81e-12)


def test_presets_name_sources_and_load_from_json(tmp_path):
    for p in ENERGY_PRESETS.values():
        assert p.source and p.mac_j > 0 and p.ac_j > 0
    paper = energy_preset("45nm-fp32")
    assert (paper.mac_j, paper.ac_j) == (4.6e-12, 0.9e-12) and "Horowitz" in paper.source
    assert "Davies" in energy_preset("loihi").source
    f = tmp_path / "mine.json"
    f.write_text(json.dumps(paper.to_dict() | {"name": "mine", "ac_j": 0.5e-12}))
    mine = energy_preset(str(f))
    assert mine == EnergyPreset("mine", 4.6e-12, 0.5e-12, 0.0, False, paper.source)
    (tmp_path / "min.json").write_text(json.dumps({"name": "m", "mac_j": 1e-12, "ac_j": 1e-13}))
    assert "custom" in energy_preset(str(tmp_path / "min.json")).source
    for text, msg in (("{", "not valid JSON"), ('{"name": "x", "mac_j": 1}', "missing"),
                      ('{"name": "x", "mac_j": -1, "ac_j": 0}', ">= 0"),
                      ('{"name": "x", "mac_j": 1, "ac_j": 1, "joules": 2}', "unknown"),
                      ('{"name": "x", "mac_j": 1, "ac_j": 1, "version": 9}', "version")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(PresetError, match=msg):
            energy_preset(str(tmp_path / "bad.json"))
    with pytest.raises(PresetError, match="unknown energy preset"):
        energy_preset("45nm-fp64")
    with pytest.raises(PresetError, match="cannot read"):
        energy_preset(str(tmp_path / "none.json"))


@pytest.mark.slow
@pytest.mark.parametrize("seed,hw,strides", [(0, (11, 9), (2, 1, 1)), (1, (8, 10), (1, 2, 1))])
def test_torch_sourced_counts_equal_lava_sourced(tmp_path, seed, hw, strides, randomise_neurons):
    """The same STM, exported and run on Lava fixed_pt with record=True: every layer's
    counts from Lava's spikes equal the counts from the torch (qat) model's spikes."""
    import neuro  # noqa: F401  (before any lava import)
    from neuro.export import export_stm
    from neuro.runner import LavaRunner
    from neuro.verify import random_mv

    torch.manual_seed(seed)
    stm = STM(STMConfig(in_channels=2, widths=(4, 6, 5), strides=strides, quant="qat"))
    randomise_neurons(stm, seed)
    x = random_mv(4, 2, *hw, 5, seed)
    torch_counts = stm_counts(stm, torch.from_numpy(x), prefix="stm.mv")
    export_stm(stm, tmp_path / "stm.h5", hw)
    with LavaRunner(tmp_path / "stm.h5", steps=5, record=True) as runner:
        lava = lava_counts(runner, x, prefix="stm.mv")
    for t, lv in zip(torch_counts, lava):
        assert sum(t.out_spikes) > 0, f"{t.geometry.name} never spiked: a weak test"
        assert (t.input_events, t.synops, t.out_spikes, t.ops, t.paper_acs) == \
            (lv.input_events, lv.synops, lv.out_spikes, lv.ops, lv.paper_acs)


@pytest.mark.slow
def test_profiler_lava_spikes_fused_equal_torch_qat_and_im2col(tmp_path, randomise_neurons):
    """``hybrid profile --spikes lava`` (``LavaSpikes``: fused ConvLIF layers, 8 sequences
    side by side): both branches' counts over 10 sequences (two tile batches, the second
    part-filled) equal the torch fixed-point model's and the im2col Lava model's (what the
    profiler ran before), layer by layer."""
    import neuro  # noqa: F401  (before any lava import)
    from hybrid.model import HybridConfig, HybridModel
    from hybrid.ondevice.energy import LavaSpikes, spiking_counts
    from neuro.export import export_stm
    from neuro.runner import LavaRunner
    from neuro.verify import random_mv

    torch.manual_seed(3)
    T, hw = 4, (20, 20)
    model = HybridModel(HybridConfig(num_classes=3, segments=5, size=hw, timesteps=T,
                                     quant="qat")).eval()
    randomise_neurons(model.stm_mv.stm, 3)
    randomise_neurons(model.stm_res.stm, 4)

    def clips(c, seed):  # (N=10, C, H, W, T) -> (B=2 views, S=5, T, C, H, W)
        return torch.from_numpy(random_mv(10, c, *hw, T, seed)).permute(0, 4, 1, 2, 3) \
            .reshape(2, 5, T, c, *hw)

    batch = {"mv": clips(2, 0), "residual": clips(3, 1)}
    with torch.no_grad():
        ref = spiking_counts(model, batch, quant="qat")
    with LavaSpikes(model) as lava:
        assert {r.conv for r in lava.runners.values()} == {"fused"}
        fused = lava.counts(model, batch)
    export_stm(model.stm_mv.stm, tmp_path / "mv.h5", hw)
    with LavaRunner(tmp_path / "mv.h5", steps=T, record=True, conv="im2col") as runner:
        im2col = lava_counts(runner, batch["mv"].reshape(10, T, 2, *hw).permute(0, 2, 3, 4, 1)
                             .numpy(), prefix="stm.mv")

    def key(c):
        return (c.geometry.name, c.input_events, c.synops, c.out_spikes, c.ops, c.paper_acs,
                c.neuron_updates)

    assert set(fused) == {"mv", "r"}
    for m in ("mv", "r"):
        assert [key(c) for c in fused[m]] == [key(c) for c in ref[m]], m
        assert all(sum(c.out_spikes) > 0 for c in ref[m]), f"{m}: a layer never spiked"
    assert [key(c) for c in im2col] == [key(c) for c in fused["mv"]]
