"""NIR export (deploy/artifact/nir.py): round trip through ``nir.read``, the NIR-semantics
simulation against our fixed-point STM, and snnTorch's NIR reader against it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from deploy.artifact.branches import read_branches
from neuro.export import export_stm, load_stm, read_network
from neuro.stm import STM, STMConfig
from neuro.verify import random_mv

nir = pytest.importorskip("nir")  # the optional extra `nir` (the Makefile installs it)
from deploy.artifact.nir import DT, differences, simulate, stm_graph, write_nir  # noqa: E402

STM_CFG = {"weight_scale": 10.0, "input_frac_bits": 6}  # hybrid.model.STM_DEFAULTS


def _export(tmp_path, channels, size, seed=0):
    torch.manual_seed(seed)
    return export_stm(STM(STMConfig(in_channels=channels, **STM_CFG)),
                      tmp_path / f"stm{channels}.h5", size)


def _inputs(channels, size, steps, seed, n=2):
    """MV-like sequences on the input quantisation grid (k / 64, |k| < 128), so the
    graded 8-bit input messages lose nothing."""
    x = random_mv(n, channels, *size, steps, seed, scale=0.3)
    return np.clip(np.round(x * 64), -128, 127) / 64


@pytest.mark.parametrize("channels,size", [(2, (56, 56)), (3, (20, 28))])
def test_roundtrip_weights_thresholds(tmp_path, channels, size):
    path = _export(tmp_path, channels, size, seed=channels)
    net = read_network(path)
    (out,) = write_nir(read_branches([path]), tmp_path / "nir")
    assert nir.serialization.read_version(out) == nir.version
    g = nir.read(out)
    assert [e for e in g.edges] == [("input", "conv1"), ("conv1", "lif1"), ("lif1", "conv2"),
                                    ("conv2", "lif2"), ("lif2", "conv3"), ("conv3", "lif3"),
                                    ("lif3", "output")]
    assert list(g.nodes["input"].input_type["input"]) == [channels, *size]
    for k, spec in enumerate(net.layers, start=1):
        conv, lif = g.nodes[f"conv{k}"], g.nodes[f"lif{k}"]
        assert isinstance(conv, nir.Conv2d) and isinstance(lif, nir.LIF)
        # the file's integers, exactly: weight = mantissa * 2**exp, vth = (vThMant << 6) / vScale
        assert np.array_equal(conv.weight / 2.0 ** spec.weight_exp, spec.weight)
        assert np.array_equal(conv.weight.astype(np.float64), spec.weight * 2.0 ** spec.weight_exp)
        assert np.all(lif.v_threshold == spec.vth * 64 / spec.v_scale)
        assert lif.v_threshold.shape == spec.shape
        assert tuple(conv.stride) == (spec.stride,) * 2
        assert tuple(conv.padding) == (spec.padding,) * 2
        # Euler at dt: v <- (1 - dt / tau) v + (r dt / tau) I  ==  (1 - dv / 4096) v + I
        np.testing.assert_allclose(1 - DT / lif.tau, 1 - spec.dv / 4096, rtol=0, atol=1e-12)
        np.testing.assert_allclose(lif.r * DT / lif.tau, 1.0, rtol=1e-12)
        assert np.all(lif.v_reset == 0) and np.all(lif.v_leak == 0)
        md = lif.metadata
        assert md["resetMode"] == "soft" and int(md["vThMant"]) == spec.vth
        assert int(md["vDecay"]) == spec.dv and float(md["vScale"]) == spec.v_scale
        assert int(conv.metadata["weightExp"]) == spec.weight_exp
    assert int(g.nodes["input"].metadata["inFracBits"]) == 6
    assert g.metadata["branch"] == ("mv" if channels == 2 else "r")
    assert "soft reset" in g.metadata["differences"]


def test_no_leak_layer_is_if(tmp_path):
    net = read_network(_export(tmp_path, 2, (12, 12)))
    net.layers[1] = dataclasses.replace(net.layers[1], dv=0)
    g = stm_graph(net, "mv")
    assert isinstance(g.nodes["lif2"], nir.IF) and isinstance(g.nodes["lif1"], nir.LIF)
    assert np.all(g.nodes["lif2"].r == 1)
    assert any("soft reset" in d for d in differences(net))


def _ours(path, x):
    """Our STM's spikes per layer (quantised torch: bit-exact to Lava fixed_pt, with
    Lava's one-step delay per layer removed, see neuro/runner.py)."""
    stm = load_stm(path)
    with torch.no_grad():
        out = stm(torch.from_numpy(x).float(), return_spike_maps=True, quant="qat")
    return [m.numpy() > 0 for m in out.spike_maps], out.v.numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_simulate_soft_reset_is_ours_up_to_fixed_point(tmp_path, seed):
    """NIR's dynamics with our soft reset put back, in float64, against the fixed-point
    STM: the same spikes except where fixed-point rounding flips a near-threshold one."""
    size = (20, 24)
    path = _export(tmp_path, 2, size, seed)
    x = _inputs(2, size, 11, seed)
    g = nir.read(write_nir(read_branches([path]), tmp_path / "nir")[0])
    soft, v_soft = simulate(g, x, soft_reset=True)
    ours, v_ours = _ours(path, x)
    for k, s in enumerate(ours, start=1):
        assert s.sum() > 0.02 * s.size, "layer barely spikes: the test would show nothing"
        assert np.array_equal(s[..., 0], soft[f"lif{k}"][..., 0])
        assert (s != soft[f"lif{k}"]).mean() < 2e-3
    assert np.mean(np.abs(v_ours - v_soft) < 1e-3) > 0.99


def test_snntorch_reads_and_runs_export(tmp_path):
    """snnTorch's NIR reader builds a network from the file and runs it; its spikes equal
    the NIR-semantics simulation exactly (hard reset, Euler at dt) and differ from ours:
    identical at the first step, fewer later (a hard reset throws the residual away)."""
    pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.import_nir import import_from_nir

    size, steps = (24, 20), 11
    path = _export(tmp_path, 2, size, seed=3)
    x = _inputs(2, size, steps, seed=3)
    g = nir.read(write_nir(read_branches([path]), tmp_path / "nir")[0])
    net = import_from_nir(g)
    rec: dict[str, list] = {}
    for name in ("lif1", "lif2", "lif3"):
        getattr(net, name).register_forward_hook(
            lambda m, i, o, name=name: rec.setdefault(name, []).append(o.detach().numpy()))
    with torch.no_grad():
        for t in range(steps):
            out, _ = net(torch.from_numpy(x[..., t]).float())
    theirs = {k: np.stack(v, -1) > 0 for k, v in rec.items()}
    assert np.array_equal(out.numpy() > 0, theirs["lif3"][..., -1])
    hard, _ = simulate(g, x)
    ours, _ = _ours(path, x)
    for k, s in enumerate(ours, start=1):
        t = theirs[f"lif{k}"]
        assert np.array_equal(t, hard[f"lif{k}"]), f"lif{k}: snnTorch != NIR semantics"
        assert np.array_equal(s[..., 0], t[..., 0])
        assert s.sum() > t.sum() and (s != t).mean() > 0.005


def test_cli_nir(tmp_path):
    import json

    from click.testing import CliRunner

    from hybrid.cli import main

    _export(tmp_path, 2, (16, 16))
    _export(tmp_path, 3, (16, 16))
    res = CliRunner().invoke(main, ["nir", str(tmp_path), "-o", str(tmp_path / "out"),
                                    "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert [p.rsplit("/", 1)[1] for p in d["files"]] == ["stm_mv.nir", "stm_r.nir"]
    assert any("soft reset" in x for x in d["differences"])
    g = nir.read(d["files"][1])
    assert g.nodes["conv1"].weight.shape[1] == 3
    bad = CliRunner().invoke(main, ["nir", str(tmp_path / "out"), "-o", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "no STM .h5 files" in bad.output
