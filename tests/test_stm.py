"""The STM in torch: config, shapes, neuron dynamics, gradients, a toy temporal task,
and the HDF5 export round trip (no Lava simulation here; see test_stm_lava.py)."""
import h5py
import numpy as np
import pytest
import torch
from torch import nn

import neuro  # noqa: F401  (before any lava import)
from neuro import quant
from neuro.export import StmFileError, export_stm, load_stm, read_network
from neuro.neuron import lif_dynamics
from neuro.stm import STM, STMConfig

SMALL = dict(widths=(4, 6, 5), strides=(1, 2, 1))


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="widths"):
        STMConfig(widths=(4, 4))
    with pytest.raises(ValueError, match="kernels must be odd"):
        STMConfig(kernels=(3, 4, 3))
    with pytest.raises(ValueError, match="quant"):
        STMConfig(quant="int4")
    with pytest.raises(ValueError, match="in_channels"):
        STMConfig(in_channels=5)


@pytest.mark.parametrize("quant_mode", ["float", "qat"])
@pytest.mark.parametrize("hw,strides,channels", [((8, 8), (1, 1, 1), 2),
                                                 ((11, 7), (2, 1, 2), 3),
                                                 ((56, 56), (2, 1, 1), 2)])
def test_shapes_and_out_size(quant_mode, hw, strides, channels):
    stm = STM(STMConfig(in_channels=channels, strides=strides, quant=quant_mode))
    x = torch.randn(2, channels, *hw, 3)
    out = stm(x, return_v_seq=True)
    h, w = stm.out_size(*hw)
    assert out.v.shape == (2, stm.cfg.widths[-1], h, w)
    assert out.v.dtype == torch.float32
    assert out.v_seq.shape == (2, stm.cfg.widths[-1], h, w, 3)
    assert torch.equal(out.v_seq[..., -1], out.v)
    assert len(out.spikes) == 3 and all(s.shape == (2, 3) for s in out.spikes)
    assert stm(x).v_seq is None


def test_soft_reset_known_values():
    # leak 0, threshold 1, input 0.6 per step: v = .6, 1.2 -> spike -> .2, .8, 1.4 -> .4
    a = torch.full((1, 5), 0.6, dtype=torch.float64)
    s, v = lif_dynamics(a, torch.tensor(1.0), torch.tensor(0.0), 0.5)
    assert s[0].tolist() == [0, 1, 0, 1, 0]
    np.testing.assert_allclose(v[0].numpy(), [0.6, 0.2, 0.8, 0.4, 1.0], atol=1e-12)


def test_fixed_point_decay_matches_lava_formula():
    # Lava: sign(v) * (|v| * (4096 - dv) >> 12)
    v = torch.tensor([-8388607.0, -4097.0, -1.0, 0.0, 5.0, 4097.0, 8388607.0], dtype=torch.float64)
    for dv in (0, 1, 1000, 4095):
        ref = np.sign(v.numpy()) * np.right_shift(
            np.abs(v.numpy()).astype(np.int64) * (4096 - dv), 12)
        assert np.array_equal(quant.decay_voltage(v, torch.tensor(float(dv))).numpy(), ref)


@pytest.mark.parametrize("quant_mode", ["float", "qat"])
def test_every_parameter_gets_a_gradient(quant_mode):
    stm = STM(STMConfig(quant=quant_mode, **SMALL))
    x = torch.randn(3, 2, 8, 8, 5) * (torch.rand(3, 1, 8, 8, 5) < 0.5) * 3
    out = stm(x, return_v_seq=True)
    (out.v.pow(2).mean() + out.v_seq.mean()).backward()
    names = [n for n, _ in stm.named_parameters()]
    assert any("threshold" in n for n in names) and any("leak" in n for n in names)
    for name, p in stm.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_threshold_and_leak_stay_in_range():
    stm = STM(STMConfig(**SMALL))
    with torch.no_grad():
        for b in stm.blocks:
            b.neuron.threshold_raw.fill_(-50.0)
            b.neuron.leak_raw.fill_(50.0)
    for b in stm.blocks:
        assert b.neuron.threshold >= b.neuron.min_threshold
        assert 0.0 <= float(b.neuron.leak.detach()) <= 1.0
        dp = b.neuron.device_params(quant.voltage_scale(b.weight_exp(), 8.0))
        assert 1 <= dp["vThMant"] <= quant.VTH_MAX and 0 <= dp["vDecay"] <= 4095


def test_qat_close_to_float():
    stm = STM(STMConfig())
    x = torch.randn(2, 2, 16, 16, 6) * (torch.rand(2, 1, 16, 16, 6) < 0.3) * 3
    x = torch.round(x * 8) / 8  # on the input grid
    f = stm(x)
    q = stm(x, quant="qat")
    for sf, sq in zip(f.spikes, q.spikes):
        assert abs(float(sf.sum() - sq.sum())) <= 0.05 * float(sf.sum()) + 5


DIRS = [(0, 1), (0, -1), (1, 0), (-1, 0)]  # (dy, dx): right, left, down, up


def moving_blobs(n: int, gen: torch.Generator, size: int = 12, steps: int = 6):
    """A 2x2 blob moving one pixel per step in one of 4 directions. Every single frame
    looks the same (one blob), so the direction is only in the sequence."""
    y = torch.randint(0, 4, (n,), generator=gen)
    x = torch.zeros(n, 2, size, size, steps)
    for i in range(n):
        dy, dx = DIRS[int(y[i])]

        def start(d):
            if d == 0:
                return int(torch.randint(0, size - 1, (1,), generator=gen))
            lo = steps - 1 if d < 0 else 0
            return lo + int(torch.randint(0, size - 1 - (steps - 1), (1,), generator=gen))

        r0, c0 = start(dy), start(dx)
        for t in range(steps):
            r, c = r0 + dy * t, c0 + dx * t
            x[i, 0, r:r + 2, c:c + 2, t] = 2.0
    return x, y


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and far faster on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_toy_direction_task_learns(one_thread):
    g = torch.Generator().manual_seed(0)
    stm = STM(STMConfig(widths=(8, 8, 8), strides=(1, 1, 1)))
    head = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    opt = torch.optim.Adam([*stm.parameters(), *head.parameters()], lr=1e-2)
    xt, yt = moving_blobs(100, g)
    with torch.no_grad():
        before = (head(stm(xt).v).argmax(1) == yt).float().mean().item()
    for _ in range(45):
        x, y = moving_blobs(32, g)
        loss = nn.functional.cross_entropy(head(stm(x).v), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (head(stm(xt).v).argmax(1) == yt).float().mean().item()
    assert before < 0.5, f"untrained accuracy {before} should be near chance (0.25)"
    assert acc >= 0.9, f"held-out direction accuracy {acc} after training (chance 0.25)"


# ---- export round trip -------------------------------------------------------------


@pytest.fixture
def exported(tmp_path, randomise_neurons):
    torch.manual_seed(3)
    stm = STM(STMConfig(**SMALL))
    randomise_neurons(stm, 3)
    path = export_stm(stm, tmp_path / "stm.h5", (8, 8))
    return stm, path


def test_export_round_trip_own_loader(exported):
    stm, path = exported
    assert not path.with_name(path.name + ".tmp").exists()
    back = load_stm(path)
    for (n1, t1), (n2, t2) in zip(stm.state_dict().items(), back.state_dict().items()):
        assert n1 == n2 and torch.equal(t1, t2), n1
    net = read_network(path)
    assert net.input_shape == (2, 8, 8) and net.config == stm.cfg
    for blk, spec in zip(stm.blocks, net.layers):
        exp = blk.weight_exp()
        m = quant.weight_mantissa(blk.synapse.weight.detach(), exp)[..., 0].numpy()
        assert np.array_equal(spec.weight, m) and spec.weight_exp == exp
        assert np.abs(spec.weight).max() <= 128
        dp = blk.neuron.device_params(spec.v_scale)
        assert (spec.vth, spec.dv, spec.du) == (dp["vThMant"], dp["vDecay"], 4095)
    x = torch.randn(2, 2, 8, 8, 4)
    assert torch.equal(stm(x, quant="qat").v, back(x, quant="qat").v)


def test_export_loads_in_netx(exported):
    stm, path = exported
    from lava.lib.dl import netx

    net = netx.hdf5.Network(net_config=str(path), input_message_bits=8, reset_interval=4)
    ours = read_network(path)
    assert len(net.layers) == 3
    for layer, spec in zip(net.layers, ours.layers):
        w = spec.weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)  # netx's Lava Conv layout
        assert np.array_equal(layer.synapse.weight.init, w)
        assert int(layer.neuron.vth.init) == spec.vth
        assert int(layer.neuron.dv.init) == spec.dv
        assert int(layer.neuron.du.init) == spec.du
        assert tuple(layer.neuron.v.shape) == tuple(reversed(spec.shape))  # (W, H, C)


def test_export_other_version_is_a_clear_error(exported):
    _, path = exported
    with h5py.File(path, "a") as f:
        f.attrs["version"] = 99
    with pytest.raises(StmFileError, match=r"stm\.h5.*version 99.*reads version 1"):
        load_stm(path)


def test_export_broken_file_is_a_clear_error(exported, tmp_path):
    _, path = exported
    data = path.read_bytes()
    broken = tmp_path / "broken.h5"
    broken.write_bytes(data[: len(data) // 3])
    with pytest.raises(StmFileError, match="broken.h5.*not a readable HDF5"):
        read_network(broken)
    with h5py.File(path, "a") as f:
        del f["layer/2/neuron/vThMant"]
    with pytest.raises(StmFileError, match="missing 'layer/2/neuron/vThMant'"):
        read_network(path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(StmFileError, match="other.h5.*not an STM export"):
        load_stm(other)
    with pytest.raises(StmFileError, match="no such file"):
        load_stm(tmp_path / "absent.h5")


def test_export_edited_integers_are_detected(exported):
    _, path = exported
    with h5py.File(path, "a") as f:
        f["layer/1/neuron/vThMant"][()] = 7
    with pytest.raises(StmFileError, match="layer 1 integers"):
        load_stm(path)
