"""The paper's STM ablations as HybridConfig switches (poster, STM table): without STM,
a common STM, a ConvLSTM in place of the STM, and fixed thresholds and leaks; their
gradients, their checkpoints, and what `hybrid deploy` does with each."""
import json

import pytest
import torch
from click.testing import CliRunner

from ann.convlstm import ConvLSTM, ConvLSTMGeometry
from hybrid.cli import main
from hybrid.model import STM_DEFAULTS, HybridConfig, HybridModel
from hybrid.training import checkpoint
from hybrid.training.evaluate import load_model
from neuro.stm import STM, STMConfig

SIZE = 20
TINY_STM = {**STM_DEFAULTS, "widths": (4, 6, 5)}
NEURON = ("threshold_raw", "leak_raw")


def _inputs(cfg, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    S, T, (H, W) = cfg.segments, cfg.timesteps, cfg.size
    return (torch.randn(B, S, 3, H, W, generator=g),
            0.3 * torch.randn(B, S, T, 2, H, W, generator=g),
            torch.randn(B, S, T, 3, H, W, generator=g))


def _cfg(**kw):
    return HybridConfig(num_classes=4, segments=2, timesteps=5, size=(SIZE, SIZE),
                        stm=kw.pop("stm", TINY_STM), **kw)


@pytest.mark.parametrize("temporal", ["stm", "common", "lstm", "none"])
@pytest.mark.parametrize("mods", [("i", "mv", "r"), ("mv", "r"), ("r",)])
def test_every_parameter_gets_a_gradient(temporal, mods):
    model = HybridModel(_cfg(temporal=temporal, modalities=mods))
    y = model(*_inputs(model.cfg))
    assert y.shape == (2, 4) and torch.isfinite(y).all()
    y.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{temporal}: no gradient for {missing}"


@pytest.mark.parametrize("temporal", ["stm", "common"])
def test_fixed_threshold_and_leak_get_no_gradient(temporal):
    cfg = _cfg(temporal=temporal, stm={**TINY_STM, "learn_neuron": False})
    model = HybridModel(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        model(*_inputs(cfg)).square().sum().backward()
        opt.step()
    fixed = {n for n, p in model.named_parameters() if n.endswith(NEURON)}
    assert len(fixed) == 2 * (4 if temporal == "common" else 6)
    for n, p in model.named_parameters():
        if n in fixed:
            assert not p.requires_grad and p.grad is None, n
            assert torch.equal(p, before[n]), f"{n} moved"
        else:
            assert p.requires_grad and p.grad is not None, n
    # synapses of the STMs did learn
    assert not torch.equal(model.stm_mv.stm.blocks[1].synapse.weight,
                           before["stm_mv.stm.blocks.1.synapse.weight"])
    # the fixed values are the configured initial ones
    nrn = model.stm_res.stm.blocks[0].neuron
    assert nrn.threshold.item() == pytest.approx(1.0) and nrn.leak.item() == pytest.approx(0.25)


def test_learned_neurons_do_get_gradients():
    """The control of the test above: the default STM learns threshold and leak."""
    model = HybridModel(_cfg())
    model(*_inputs(model.cfg)).square().sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if n.endswith(NEURON)]
    assert len(grads) == 12 and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_common_stm_shares_its_spiking_layers():
    model = HybridModel(_cfg(temporal="common"))
    mv, r = model.stm_mv.stm, model.stm_res.stm
    assert mv.blocks[0] is not r.blocks[0]  # own first layer: 2 vs 3 input channels
    assert mv.blocks[1] is r.blocks[1] and mv.blocks[2] is r.blocks[2]
    assert r.blocks[0].synapse.weight.shape[1] == 3 and mv.blocks[0].synapse.weight.shape[1] == 2
    own = sum(p.numel() for p in HybridModel(_cfg()).parameters())
    shared = sum(p.numel() for p in model.parameters())
    assert own - shared == sum(p.numel() for b in r.blocks[1:] for p in b.parameters())
    # a shared layer's gradient sums both modalities' contributions
    x = _inputs(model.cfg)
    model(*x).sum().backward()
    g_both = mv.blocks[1].synapse.weight.grad.clone()
    model.zero_grad()
    model(x[0], x[1], torch.zeros_like(x[2])).sum().backward()
    assert not torch.allclose(g_both, mv.blocks[1].synapse.weight.grad)


@pytest.mark.parametrize("temporal", ["common", "lstm", "none"])
def test_checkpoint_round_trip(temporal, tmp_path):
    """Saved like any checkpoint; reloads to the same outputs (shared layers stay shared)."""
    cfg = _cfg(temporal=temporal)
    model = HybridModel(cfg).eval()
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, model_config=cfg.to_dict(), classes=list("abcd"),
                    model=model.state_dict(), epoch=1)
    loaded, _, _ = load_model(path)
    x = _inputs(cfg)
    with torch.no_grad():
        assert torch.equal(model(*x), loaded(*x))
    if temporal == "common":
        assert loaded.stm_mv.stm.blocks[2] is loaded.stm_res.stm.blocks[2]


def test_old_configs_load_as_the_default_stm():
    """A checkpoint config written before the ablations (no 'temporal', no 'learn_neuron')
    is today's model: an STM per modality with learned neurons."""
    d = _cfg().to_dict()
    del d["temporal"]
    cfg = HybridConfig.from_dict(d)
    assert cfg.temporal == "stm" and cfg.stm_config(2).learn_neuron
    assert cfg == _cfg()


def test_conv_lstm_against_a_cell_loop():
    """The ConvLSTM equals a step-by-step cell written out with torch.nn.functional, and
    its output has the STM's map size (strides 2, 1, 1 and 2, 2, 1; odd sizes too)."""
    torch.manual_seed(3)
    for (h, w), strides in (((20, 20), (2, 1, 1)), ((37, 23), (2, 2, 1))):
        geo = ConvLSTMGeometry(3, 5, strides[0] * strides[1] * strides[2], (h, w))
        lstm = ConvLSTM(geo)
        x = torch.randn(2, 4, 3, h, w)
        hs = torch.zeros(2, 5, *geo.out_hw)
        cs = torch.zeros_like(hs)
        for t in range(4):
            z = (torch.nn.functional.conv2d(x[:, t], lstm.conv_x.weight, lstm.conv_x.bias,
                                            geo.stride, 1)
                 + torch.nn.functional.conv2d(hs, lstm.conv_h.weight, None, 1, 1))
            i, f, g, o = z[:, :5], z[:, 5:10], z[:, 10:15], z[:, 15:]
            cs = f.sigmoid() * cs + i.sigmoid() * g.tanh()
            hs = o.sigmoid() * cs.tanh()
        assert torch.allclose(lstm(x), hs, atol=1e-6)
        stm_out = STMConfig(in_channels=3, strides=strides).layer_sizes(h, w)[-1]
        assert geo.out_hw == stm_out
        assert geo.params == sum(p.numel() for p in lstm.parameters())


def _save(tmp_path, **kw):
    cfg = _cfg(**kw)
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, model_config=cfg.to_dict(), classes=list("abcd"),
                    model=HybridModel(cfg).state_dict(), epoch=1)
    return path


@pytest.mark.parametrize("temporal, why", [("lstm", "ConvLSTM"), ("none", "every layer is dense")])
def test_deploy_refuses_a_model_without_spiking_partition(temporal, why, tmp_path):
    path = _save(tmp_path, temporal=temporal)
    res = CliRunner().invoke(main, ["deploy", str(path), "-o", str(tmp_path / "art")])
    assert res.exit_code == 1 and why in res.output and str(path) in res.output, res.output
    assert "Traceback" not in res.output and not (tmp_path / "art").exists()


def test_deploy_of_an_iframe_only_model_is_unchanged(tmp_path):
    """Without MV and residual the temporal module is absent: nothing to refuse."""
    from hybrid.ondevice.artifacts import NotDeployable, check_deployable

    check_deployable(HybridModel(_cfg(temporal="lstm", modalities=("i",))), "x")
    with pytest.raises(NotDeployable):
        check_deployable(HybridModel(_cfg(temporal="lstm", modalities=("i", "r"))), "x")


@pytest.mark.parametrize("kw", [{"temporal": "common"},
                                {"stm": {**TINY_STM, "learn_neuron": False}}])
def test_deploy_common_and_fixed_stm(kw, tmp_path):
    """The common STM deploys as two ordinary STM files (each its own first layer and the
    shared ones); fixed neurons export like learned ones. Each file reloads to its torch
    STM: same spikes and voltages on the same input in fixed point."""
    from neuro.export import load_stm

    path = _save(tmp_path, **kw)
    res = CliRunner().invoke(main, ["deploy", str(path), "-o", str(tmp_path / "art"), "--json"])
    assert res.exit_code == 0, res.output
    files = {f["path"] for f in json.loads(res.output)["files"]}
    assert {"stm_mv.h5", "stm_r.h5", "dense.onnx"} <= files
    model, _, _ = load_model(path)
    for m, branch, c in (("mv", model.stm_mv, 2), ("r", model.stm_res, 3)):
        stm = load_stm(tmp_path / "art" / f"stm_{m}.h5")
        x = 0.4 * torch.randn(3, c, SIZE, SIZE, 5)
        a, b = stm(x, quant="qat"), branch.stm(x, quant="qat")
        assert torch.equal(a.v, b.v) and all(torch.equal(p, q) for p, q in zip(a.spikes, b.spikes))
    if "temporal" in kw:
        a, b = (load_stm(tmp_path / "art" / f"stm_{m}.h5") for m in ("mv", "r"))
        assert torch.equal(a.blocks[2].synapse.weight, b.blocks[2].synapse.weight)


def test_train_options_build_the_ablations():
    from hybrid.cli.options import model_config

    base = {"variant": "tiny", "segments": 3, "size": 56, "modalities": "i,mv,r",
            "encoder": "unified", "pooling": "gap", "no_mixer": False, "no_skips": False,
            "no_rrdb": False, "temporal": "stm", "fixed_lif": False}
    assert model_config(base, 8) == HybridConfig()  # the defaults are today's model
    assert model_config({**base, "temporal": "lstm"}, 8).temporal == "lstm"
    assert not model_config({**base, "fixed_lif": True}, 8).stm_config(2).learn_neuron
    res = CliRunner().invoke(main, ["summary", "--temporal", "lstm", "--fixed-lif"])
    assert res.exit_code == 2 and "--fixed-lif" in res.output and "Traceback" not in res.output


def test_stm_fixed_neurons_standalone():
    stm = STM(STMConfig(learn_neuron=False))
    assert all(not b.neuron.threshold_raw.requires_grad for b in stm.blocks)
    assert all(b.synapse.weight.requires_grad for b in stm.blocks)


@pytest.mark.parametrize("temporal", ["lstm", "none"])
def test_profile_refuses_a_model_without_stms(temporal):
    from hybrid.ondevice.energy import profile_model

    with pytest.raises(ValueError, match="no STMs"):
        profile_model(HybridModel(_cfg(temporal=temporal)), [])
