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


@pytest.mark.parametrize("seed,hw,steps,channels,strides,batches,conv", [
    (0, (8, 8), 4, 2, (1, 2, 1), 2, "lava"),
    (1, (10, 6), 5, 3, (2, 1, 1), 3, "lava"),
    (2, (9, 9), 3, 2, (1, 1, 2), 1, "lava"),
    (3, (10, 6), 4, 2, (2, 1, 1), 2, "im2col"),
])
def test_torch_qat_and_lava_fixed_pt_agree_exactly(seed, hw, steps, channels, strides, batches,
                                                   conv, randomise_neurons):
    torch.manual_seed(seed)
    stm = STM(STMConfig(in_channels=channels, widths=(4, 6, 5), strides=strides))
    randomise_neurons(stm, seed)
    thresholds = {round(float(b.neuron.threshold.detach()), 4) for b in stm.blocks}
    leaks = {round(float(b.neuron.leak.detach()), 4) for b in stm.blocks}
    assert len(thresholds) == 3 and len(leaks) == 3, "layers must differ for this test"
    x = random_mv(5, channels, *hw, steps, seed)
    rep = verify(stm, x, batches=batches, conv=conv)
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


def test_stream_many_sequences_one_compiled_network(tmp_path):
    """Sequences streamed in several run() calls give what each gives alone: the state
    is reset inside the simulation between sequences."""
    torch.manual_seed(5)
    stm = STM(STMConfig(widths=(4, 6, 5)))
    path = export_stm(stm, tmp_path / "stm.h5", (8, 8))
    x = random_mv(4, 2, 8, 8, 4, seed=5)
    with LavaRunner(path, steps=4) as r:
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


@pytest.mark.parametrize("at", [1, 4, 9])
def test_runtime_stopped_on_keyboard_interrupt(tmp_path, at):
    stm = STM(STMConfig(widths=(2, 2, 2)))
    path = export_stm(stm, tmp_path / "stm.h5", (6, 6))
    x = random_mv(2, 2, 6, 6, 3, seed=0)
    calls = {"n": 0}
    with pytest.raises(KeyboardInterrupt):
        with LavaRunner(path, steps=3) as r:
            assert multiprocessing.active_children(), "expected Lava's runtime processes"
            real_send = r.inj.send

            def send(data):
                calls["n"] += 1
                if calls["n"] == at:
                    raise KeyboardInterrupt
                real_send(data)

            r.inj.send = send
            r.run(x)
    assert calls["n"] == at
    assert multiprocessing.active_children() == [], "Lava processes left running"


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
