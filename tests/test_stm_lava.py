"""The exported STM on Lava's fixed-point simulator: bit-exact agreement with the
quantised torch model, streaming, runtime clean-up, and ``hybrid stm verify``."""
import json
import multiprocessing

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import neuro  # noqa: F401  (before any lava import)
from neuro.export import export_stm
from neuro.runner import LavaRunner
from neuro.stm import STM, STMConfig
from neuro.verify import random_mv, verify

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed,hw,steps,channels,strides,batches,conv,tiles", [
    (0, (8, 8), 4, 2, (1, 2, 1), 2, "lava", 1),
    (1, (10, 6), 5, 3, (2, 1, 1), 3, "lava", 2),
    (2, (9, 9), 3, 2, (1, 1, 2), 1, "lava", 3),
    (3, (10, 6), 4, 2, (2, 1, 1), 2, "im2col", 2),
    (4, (8, 8), 4, 2, (1, 2, 1), 2, "fused", 1),
    (5, (10, 6), 5, 3, (2, 1, 1), 3, "fused", 2),
    (6, (9, 9), 3, 2, (1, 1, 2), 1, "fused", 3),
    (9, (7, 11), 4, 3, (2, 2, 1), 2, "fused", 8),
    (8, (13, 5), 2, 2, (1, 1, 1), 1, "fused", 4),
])
def test_torch_qat_and_lava_fixed_pt_agree_exactly(seed, hw, steps, channels, strides, batches,
                                                   conv, tiles, randomise_neurons):
    torch.manual_seed(seed)
    stm = STM(STMConfig(in_channels=channels, widths=(4, 6, 5), strides=strides))
    randomise_neurons(stm, seed)
    thresholds = {round(float(b.neuron.threshold.detach()), 4) for b in stm.blocks}
    leaks = {round(float(b.neuron.leak.detach()), 4) for b in stm.blocks}
    assert len(thresholds) == 3 and len(leaks) == 3, "layers must differ for this test"
    x = random_mv(5, channels, *hw, steps, seed)
    rep = verify(stm, x, batches=batches, conv=conv, tiles=tiles)
    for layer in rep["layers"]:
        assert layer["spikes_torch"] > 0, f"layer {layer['layer']} never spiked: a weak test"
        assert layer["mismatched_spikes"] == 0, rep
    assert rep["max_v_diff"] == 0.0 and rep["max_v_seq_diff_int"] == 0.0, rep
    assert rep["exact"] is True


@pytest.mark.parametrize("hw,c_in,c_out,k,stride", [
    ((8, 8), 2, 4, 3, 1), ((10, 6), 3, 5, 3, 2), ((9, 7), 4, 3, 5, 2), ((6, 6), 1, 1, 1, 1)])
def test_im2col_conv_equals_lava_conv(hw, c_in, c_out, k, stride):
    from neuro.lava_procs.fast_conv import conv_im2col

    from lava.proc.conv import utils

    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (*hw, c_in))
    w = rng.integers(-128, 128, (c_out, k, k, c_in))
    p = k // 2
    ref = utils.conv(x, w, np.array([k, k]), np.array([stride] * 2), np.array([p, p]),
                     np.array([1, 1]), 1)
    assert np.array_equal(conv_im2col(x, w, (stride, stride), (p, p)), ref)


@pytest.mark.parametrize("conv,tiles", [("lava", 1), ("fused", 3)])
def test_stream_many_sequences_one_compiled_network(tmp_path, conv, tiles):
    """Sequences streamed in several run() calls (whole and partial batches of tiles)
    give what each gives alone: the state is reset inside the simulation between
    sequences, and tiles side by side do not mix."""
    torch.manual_seed(5)
    stm = STM(STMConfig(widths=(4, 6, 5)))
    path = export_stm(stm, tmp_path / "stm.h5", (8, 8))
    x = random_mv(4, 2, 8, 8, 4, seed=5)
    with LavaRunner(path, steps=4, conv=conv, tiles=tiles) as r:
        together = r.run(x)
        alone = [r.run(x[i:i + 1]) for i in (3, 0)]
        v, counts = r.run(x[:2])
    assert np.array_equal(alone[0].v_int[0], together.v_int[3])
    assert np.array_equal(alone[1].v_int[0], together.v_int[0])
    assert np.array_equal(v, together.v[:2])
    assert all(np.array_equal(c, t[:2]) for c, t in zip(counts, together.spike_counts))
    with torch.no_grad():
        out = stm(torch.from_numpy(x), quant="qat")
    assert np.array_equal(out.v.numpy(), together.v)
    assert all(np.array_equal(a.numpy(), b) for a, b in zip(out.spikes, together.spike_counts))


@pytest.mark.parametrize("at,conv", [(1, "fused"), (4, "lava"), (9, "fused")])
def test_runtime_stopped_on_keyboard_interrupt(tmp_path, at, conv):
    """Interrupted while sending the at-th batch (one sequence per batch here)."""
    stm = STM(STMConfig(widths=(2, 2, 2)))
    path = export_stm(stm, tmp_path / "stm.h5", (6, 6))
    x = random_mv(10, 2, 6, 6, 3, seed=0)
    calls = {"n": 0}
    with pytest.raises(KeyboardInterrupt):
        with LavaRunner(path, steps=3, conv=conv, tiles=1) as r:
            assert multiprocessing.active_children(), "expected Lava's runtime processes"
            real_send = r.inj.send

            def send(data, watch=None):
                calls["n"] += 1
                if calls["n"] == at:
                    raise KeyboardInterrupt
                real_send(data, watch)

            r.inj.send = send
            r.run(x)
    assert calls["n"] == at
    assert multiprocessing.active_children() == [], "Lava processes left running"


@pytest.mark.parametrize("tiles", [2, 5])
def test_fused_layers_equal_lava_conv_and_lif_processes(tmp_path, tiles, randomise_neurons):
    """The one-process ConvLIF layers against Lava's own Conv model + the LIF subclass
    of Lava's bit-accurate model (a second implementation), every spike and voltage,
    with inputs large enough to wrap the 24-bit current and clip the voltage."""
    torch.manual_seed(11)
    stm = STM(STMConfig(in_channels=3, widths=(5, 4, 6), strides=(2, 1, 2)))
    randomise_neurons(stm, 11)
    with torch.no_grad():  # one-signed layer-1 weights and saturated inputs: |a| << 6 > 2**23
        w = stm.blocks[0].synapse.weight
        w.copy_(w.abs() + w.abs().max())  # mantissas 64..127
    path = export_stm(stm, tmp_path / "stm.h5", (9, 12))
    x = np.abs(random_mv(7, 3, 9, 12, 5, seed=11, density=0.6, scale=40.0))
    res = {}
    for conv in ("lava", "fused"):
        with LavaRunner(path, steps=5, record=True, conv=conv, tiles=tiles) as r:
            res[conv] = r.run(x)
    a, b = res["lava"], res["fused"]
    assert np.array_equal(a.v_seq_int, b.v_seq_int)
    from neuro import quant
    from neuro.export import read_network

    net = read_network(path)  # layer 1's synaptic sums, so that << 6 leaves 24 bit
    xq = quant.quantize_input_np(x, net.in_frac_bits, net.in_bits)[..., 0]
    a1 = torch.nn.functional.conv2d(torch.from_numpy(xq).double(),
                                    torch.from_numpy(net.layers[0].weight).double(), padding=1)
    assert float(a1.max()) * 64 > 2**23, "sums too small to test the current wrap"
    for sa, sb in zip(a.spikes, b.spikes):
        assert sa.sum() > 0 and np.array_equal(sa, sb)


@pytest.mark.parametrize("w,strides,tiles", [(56, (2, 1, 1), 8), (9, (1, 1, 2), 3),
                                             (7, (2, 2, 1), 5), (5, (1, 1, 1), 2)])
def test_tile_layout_gaps_and_alignment(tmp_path, w, strides, tiles):
    from neuro.export import read_network
    from neuro.runner import tile_layout

    stm = STM(STMConfig(widths=(2, 2, 2), strides=strides))
    net = read_network(export_stm(stm, tmp_path / "stm.h5", (6, w)))
    planes = tile_layout(net, tiles)
    assert [p.width for p in planes] == [w] + [s.shape[2] for s in net.layers]
    for prev, plane, s in zip(planes, planes[1:], strides):
        assert prev.pitch == s * plane.pitch  # tile n's outputs see tile n's inputs
        assert prev.pitch - prev.width >= 1  # room for the 3x3 convs' padding
        assert plane.ranges[-1][1] <= plane.frame
    assert tile_layout(net, 1)[0].frame == w  # one tile: the untiled network


def test_cli_stm_verify_json(tmp_path):
    from hybrid.cli import main

    res = CliRunner().invoke(main, ["stm", "verify", "--size", "8x8", "--steps", "4",
                                    "--sequences", "3", "--seed", "1", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    for key in ("exact", "max_v_diff", "layers", "torch_s", "lava_compile_s",
                "lava_per_sequence_s"):
        assert key in rep, key
    assert rep["exact"] is True and rep["max_v_diff"] == 0.0
    assert len(rep["layers"]) == 3
    assert all({"spikes_torch", "spikes_lava"} <= set(layer) for layer in rep["layers"])
    assert rep["input_shape"] == [2, 8, 8, 4]


def test_cli_stm_verify_checkpoint_and_bad_input(tmp_path):
    from hybrid.cli import main

    torch.manual_seed(2)
    stm = STM(STMConfig(in_channels=3, widths=(3, 4, 4)))
    ck = tmp_path / "stm.pt"
    torch.save({"config": vars(stm.cfg), "state_dict": stm.state_dict()}, ck)
    res = CliRunner().invoke(main, ["stm", "verify", "--checkpoint", str(ck), "--size", "6x6",
                                    "--steps", "3", "--channels", "3"])
    assert res.exit_code == 0, res.output
    assert "EXACT" in res.output
    res = CliRunner().invoke(main, ["stm", "verify", "--size", "8by8"])
    assert res.exit_code == 2 and "WIDTHxHEIGHT" in res.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    res = CliRunner().invoke(main, ["stm", "verify", "--checkpoint", str(bad)])
    assert res.exit_code == 1 and "bad.pt" in res.output


def test_cli_stm_verify_extract_input(tmp_path):
    """--input reads a `hybrid extract` file: per GOP 'mv' (G, 11, H, W, 2) pixels."""
    import h5py

    from hybrid.cli import main

    rng = np.random.default_rng(0)
    mv = (rng.normal(0, 3, (3, 11, 8, 8, 2)) * (rng.random((3, 11, 8, 8, 1)) < 0.4))
    path = tmp_path / "clip.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "hybrid-compressed-video", "version": 1})
        f["mv"] = mv.astype(np.float32)
        f["residual"] = np.zeros((3, 11, 8, 8, 3), np.int16)
    res = CliRunner().invoke(main, ["stm", "verify", "--input", str(path), "--steps", "4",
                                    "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["exact"] and rep["sequences"] == 3 and rep["input_shape"] == [2, 8, 8, 4]
    with h5py.File(path, "a") as f:
        f.attrs["version"] = 7
    res = CliRunner().invoke(main, ["stm", "verify", "--input", str(path), "--steps", "4"])
    assert res.exit_code == 1 and "clip.h5" in res.output and "version 7" in res.output



@pytest.mark.parametrize("record", [False, True])
def test_fused_active_window_equals_every_step_schedule(tmp_path, monkeypatch, record,
                                                        randomise_neurons):
    """The fused layers compute and message only their T active steps per period
    (``ConvLIF(active=T)``, host I/O ``active_only``); the same network run at every step
    (ConvLIF's default, zeros sent in the drain steps) gives the same integers, streamed
    over whole and part-filled batches."""
    import neuro.runner as runner_mod

    torch.manual_seed(12)
    stm = STM(STMConfig(in_channels=2, widths=(4, 6, 5), strides=(2, 1, 1)))
    randomise_neurons(stm, 12)
    path = export_stm(stm, tmp_path / "stm.h5", (9, 10))
    x = random_mv(7, 2, 9, 10, 4, seed=12)

    def run():
        with LavaRunner(path, steps=4, record=record, conv="fused", tiles=3) as r:
            return r.run(x), r.run(x[:2])

    windowed = run()

    made = []

    def every_step(cls):
        def make(*a, active=None, v_last_only=False, active_only=False, **k):
            made.append(cls.__name__)
            return cls(*a, **k)
        return make

    for name in ("ConvLIF", "BatchSource", "BatchReadout"):
        monkeypatch.setattr(runner_mod, name, every_step(getattr(runner_mod, name)))
    full = run()
    assert sorted(made) == ["BatchReadout", "BatchSource"] + ["ConvLIF"] * 3
    for a, b in zip(windowed, full):
        assert np.array_equal(a.v_int, b.v_int)
        assert all(np.array_equal(p, q) for p, q in zip(a.spike_counts, b.spike_counts))
        if record:
            assert np.array_equal(a.v_seq_int, b.v_seq_int)
            assert all(np.array_equal(p, q) for p, q in zip(a.spikes, b.spikes))
    assert all(c.sum() > 0 for c in windowed[0].spike_counts), "a layer never spiked"
    with torch.no_grad():
        out = stm(torch.from_numpy(x), quant="qat")
    assert np.array_equal(out.v.numpy(), windowed[0].v)
