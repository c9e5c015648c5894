"""Core mapping (deploy/hardware/neurocores/mapping.py): counts against a hand-computed case,
against torch's
own convolution, and per-core limits against an explicit synapse list."""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from deploy.artifact.branches import read_branches
from deploy.hardware.neurocores.mapping import map_layers, map_network
from deploy.hardware.neurocores.mapping_file import read_mapping, write_mapping
from deploy.presets import CHIPS, LOIHI, LOIHI2, ChipPreset, PresetError
from neuro.export import LayerSpec, StmNetwork, export_stm
from neuro.stm import STM, STMConfig


def _net(in_shape, layers, seed=0):
    """An StmNetwork of random 8-bit weights; ``layers``: (C_out, k, stride) each."""
    rng = np.random.default_rng(seed)
    shape, specs = in_shape, []
    for c, k, s in layers:
        h, w = ((n + 2 * (k // 2) - k) // s + 1 for n in shape[1:])
        wt = rng.integers(-128, 128, (c, shape[0], k, k)).astype(np.int32)
        specs.append(LayerSpec(wt, -7, s, k // 2, (c, h, w), 100, 1024, 4095, 64.0))
        shape = (c, h, w)
    return StmNetwork(tuple(in_shape), 3, 8, specs, STMConfig(in_channels=in_shape[0]))


def _chip(**kw):
    base = dict(name="toy", title="toy chip", cores=30, neurons_per_core=8,
                memory_bits_per_core=1024, memory_holds_state=False,
                fan_in_axons_per_core=40, fan_out_axons_per_core=None, max_weight_bits=8,
                conv_weight_sharing=True, graded_spikes=True, source="made up for the test")
    base.update(kw)
    return ChipPreset(**base)


# Input 2x6x6; conv1 4 ch k3 s2 -> 4x3x3; conv2 2 ch k3 s1 -> 2x3x3; conv3 2 ch k1 -> 2x3x3.
HAND = ((2, 6, 6), [(4, 3, 2), (2, 3, 1), (2, 1, 1)])


def test_counts_by_hand():
    """conv1: output row o reads input rows 2o-1..2o+1, inside 6 rows: 2, 3, 3 (sum 8)
    per axis, so 4 * 2 * 8 * 8 = 512 synapses over 36 neurons, fan-in <= 2*3*3 = 18.
    conv2: 3 rows, k3 p1: taps 2, 3, 2 (sum 7): 2 * 4 * 7 * 7 = 392; fan-in <= 36.
    conv1's fan-out into conv2: outputs covering input row i: 2, 3, 2, so <= 2*3*3 = 18,
    in all 4 * 2 * 7 * 7 = 392 = conv2's synapses. conv3 (1x1): 2 * 2 * 9 = 36."""
    lm = map_layers("mv", _net(*HAND), _chip())
    assert [m.neurons for m in lm] == [36, 18, 18]
    assert [m.synapses for m in lm] == [512, 392, 36]
    assert [m.fan_in_max for m in lm] == [18, 36, 2]
    assert lm[0].fan_in_mean == pytest.approx(512 / 36)
    assert [m.fan_out_max for m in lm] == [18, 2, 0]
    assert lm[0].fan_out_mean == pytest.approx(392 / 36)
    assert lm[1].fan_out_mean == pytest.approx(36 / 18)
    assert [m.kernel_weights for m in lm] == [72, 72, 4]
    assert [m.state_bits for m in lm] == [36 * 48, 18 * 48, 18 * 48]


def test_cores_by_hand():
    """Toy chip: 8 neurons, 1024 bits, 40 fan-in axons a core.
    conv3 (2x3x3): 2 channels x 1 row = 6 neurons a core -> 3 cores (2 ch x 2 rows = 12 > 8;
    1 ch x 2 rows: 2 groups x 2 bands = 4). conv2 likewise 2 ch x 1 row: 3 cores; its
    middle row reads 3 input rows x 3 columns x 4 channels = 36 of 40 axons (binding;
    neurons 6/8, memory 2*4*9 weights * 8 bit = 576/1024). conv1 (4x3x3): 2 ch x 1 row ->
    2 groups x 3 bands = 6 cores; rows 1..3 of 6 columns x 2 channels = 36 axons (binding).
    Stored with sharing: conv1 72 weights x 3 bands = 216. 12 cores of 30: 2 side by side."""
    mp = map_network({"mv": _net(*HAND)}, _chip())
    assert [m.cores for m in mp.layers] == [6, 3, 3]
    parts = [(m.channels_per_core, m.rows_per_core, m.cols_per_core) for m in mp.layers]
    assert parts == [(2, 1, 3)] * 3  # ties (2x3x1 tiles) go to the wider tile
    assert [m.binding for m in mp.layers] == ["fan_in_axons", "fan_in_axons", "neurons"]
    assert mp.layers[1].worst_core["memory"] == 576
    assert mp.layers[0].worst_core["fan_in_axons"] == 36
    assert mp.layers[0].weights_stored == 216
    assert mp.layers[0].synaptic_memory_bits == 216 * 8
    assert (mp.cores_used, mp.fits, mp.sequences_per_chip) == (12, True, 2)
    # conv1 cores (2 ch, 1 row) send each neuron to the conv2 cores reading its row:
    # conv2's 3 one-row bands read rows {0,1}, {0,1,2}, {1,2} -> 2, 3, 2 cores; a core of
    # conv1's row 1 has 2 * 3 neurons x 3 = 18 edges. A limit of 10 (fan-in 100) leaves
    # 1 ch x 3 rows x 1 column (edges (2 + 3 + 2) x 1 = 7; 1 x 1 x 3 would give 9):
    # 4 groups x 3 column bands = 12 cores; 2 ch or 2 columns would give 14 edges.
    assert mp.layers[0].worst_core["fan_out_axons"] == 18
    tight = map_network({"mv": _net(*HAND)},
                        _chip(fan_out_axons_per_core=10, fan_in_axons_per_core=100))
    assert tight.layers[0].cores == 12 and tight.layers[0].binding == "fan_out_axons"
    assert tight.layers[0].worst_core["fan_out_axons"] == 7
    small = map_network({"mv": _net(*HAND)}, _chip(cores=11))
    assert not small.fits and small.sequences_per_chip == 0
    assert "12 cores needed" in small.problems[0]


def test_unshared_weights_by_hand():
    """Without sharing a core stores every synapse of its neurons: conv2's middle-row core
    (2 ch x 1 row) holds 2 * 4 * 3 (rows) * 7 (taps of 3 columns) = 168 weights = 1344
    bits > 1024; 1 ch x 1 row (672 bits, fan-in 36) fits: 2 groups x 3 bands = 6 cores."""
    mp = map_network({"mv": _net(*HAND)}, _chip(conv_weight_sharing=False))
    assert not mp.shared_weights
    assert mp.layers[1].cores == 6 and mp.layers[1].worst_core["memory"] == 672
    assert mp.layers[1].weights_stored == 392


def test_layer_too_big_for_a_core():
    mp = map_network({"mv": _net(*HAND)}, _chip(fan_in_axons_per_core=10))
    assert not mp.fits
    assert mp.layers[0].cores is None and "fan_in_axons" in mp.layers[0].problem


@pytest.mark.parametrize("seed", range(4))
def test_counts_against_torch_conv(seed):
    """Synapses, fan-in and fan-out from torch's own convolution of ones (fan-out is the
    gradient of the summed outputs with respect to each input), at varied sizes."""
    rng = np.random.default_rng(seed)
    c_in = int(rng.integers(1, 4))
    h, w = (int(v) for v in rng.integers(5, 20, 2))
    layers = [(int(rng.integers(1, 5)), int(rng.choice([1, 3, 5])), int(rng.integers(1, 4)))
              for _ in range(3)]
    net = _net((c_in, h, w), layers, seed)
    lm = map_layers("r", net, LOIHI2)
    shape = net.input_shape
    for i, (spec, m) in enumerate(zip(net.layers, lm)):
        k = spec.weight.shape[-1]
        x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
        y = torch.nn.functional.conv2d(x, torch.ones(spec.weight.shape, dtype=torch.float64),
                                       stride=spec.stride, padding=k // 2)
        assert tuple(y.shape[1:]) == spec.shape
        assert m.synapses == int(y.sum()) and m.fan_in_max == int(y.max())
        y.sum().backward()
        if i > 0:  # this conv's input fan-out is the previous layer's fan-out
            assert lm[i - 1].fan_out_max == int(x.grad.max())
            assert lm[i - 1].fan_out_mean == pytest.approx(float(x.grad.mean()))
        shape = spec.shape


def _sources_by_core(net, j, cores_of):
    """Layer ``j``'s cores -> the source neurons (c, y, x) their synapses read."""
    spec = net.layers[j]
    prev = net.input_shape if j == 0 else net.layers[j - 1].shape
    c, h, w = spec.shape
    k, s, p = spec.weight.shape[-1], spec.stride, spec.padding
    out: dict[int, set] = {}
    for co in range(c):
        for oy in range(h):
            for ox in range(w):
                srcs = out.setdefault(int(cores_of[j][co, oy, ox]), set())
                for iy in range(max(oy * s - p, 0), min(oy * s - p + k, prev[1])):
                    for ix in range(max(ox * s - p, 0), min(ox * s - p + k, prev[2])):
                        srcs.update((ci, iy, ix) for ci in range(prev[0]))
    return out


def _synapses_by_core(net, j, cores_of):
    """Layer ``j``'s cores -> how many synapses end on their neurons (unshared storage)."""
    spec = net.layers[j]
    prev = net.input_shape if j == 0 else net.layers[j - 1].shape
    k, s, p = spec.weight.shape[-1], spec.stride, spec.padding
    out: dict[int, int] = {}
    for (_, oy, ox), core in np.ndenumerate(cores_of[j]):
        ny = len(range(max(oy * s - p, 0), min(oy * s - p + k, prev[1])))
        nx = len(range(max(ox * s - p, 0), min(ox * s - p + k, prev[2])))
        out[int(core)] = out.get(int(core), 0) + prev[0] * ny * nx
    return out


def _explicit_core_use(net, lm):
    """Per layer, the worst core's neurons, distinct source neurons and (neuron,
    destination core) edges, from every synapse and the partition's core of each neuron."""
    cores_of = []
    for spec, m in zip(net.layers, lm):
        c, h, w = spec.shape
        cc, yy, xx = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
        by, bx = math.ceil(h / m.rows_per_core), math.ceil(w / m.cols_per_core)
        cores_of.append((cc // m.channels_per_core) * by * bx + (yy // m.rows_per_core) * bx
                        + xx // m.cols_per_core)
    use = []
    for i in range(len(net.layers)):
        fan_in = max(len(v) for v in _sources_by_core(net, i, cores_of).values())
        fan_out = 0
        if i + 1 < len(net.layers):
            edges: dict[int, set] = {}
            for core, srcs in _sources_by_core(net, i + 1, cores_of).items():
                for src in srcs:
                    edges.setdefault(int(cores_of[i][src]), set()).add((src, core))
            fan_out = max(len(v) for v in edges.values())
        use.append({"neurons": int(np.bincount(cores_of[i].ravel()).max()),
                    "fan_in_axons": fan_in, "fan_out_axons": fan_out,
                    "synapses": max(_synapses_by_core(net, i, cores_of).values())})
    return use


@pytest.mark.parametrize("seed", range(4))
def test_worst_core_against_explicit_synapses(seed):
    rng = np.random.default_rng(seed + 10)
    h = int(rng.integers(6, 13))
    net = _net((2, h, h + 3), [(4, 3, 2), (3, 3, 1), (2, 3, 1)], seed)
    chip = _chip(neurons_per_core=int(rng.integers(6, 20)), memory_bits_per_core=4000,
                 fan_in_axons_per_core=int(rng.integers(40, 400)),
                 fan_out_axons_per_core=int(rng.integers(60, 300)))
    for shared in (True, False):
        lm = map_layers("mv", net, chip, shared=shared)
        assert all(m.cores is not None for m in lm)
        for m, ref in zip(lm, _explicit_core_use(net, lm)):
            syn = ref.pop("synapses")
            for key, val in ref.items():
                assert m.worst_core[key] == val, (m.name, key)
                assert val <= (getattr(chip, f"{key}_per_core") or math.inf)
            stored = syn if not shared else m.kernel_weights // m.out_shape[0] * min(
                m.channels_per_core, m.out_shape[0])
            assert m.worst_core["memory"] == stored * 8 <= chip.memory_bits_per_core


def test_presets_name_sources():
    from hybrid.cli.map import CHIP_NAMES

    assert set(CHIPS) == {"loihi", "loihi2"} == set(CHIP_NAMES)
    assert (LOIHI.cores, LOIHI.neurons_per_core, LOIHI.fan_in_axons_per_core) == (128, 1024, 4096)
    assert LOIHI.memory_bits_per_core == 128 * 1024 * 8 and "Davies" in LOIHI.source
    assert LOIHI2.neurons_per_core * LOIHI2.cores == 1 << 20 and "SECONDARY" in LOIHI2.source
    with pytest.raises(PresetError, match="source"):
        _chip(source="")


def test_real_export_both_branches(tmp_path):
    """An exported MV and residual STM at 56x56 on both chips: the file's shapes and
    the STM's own per-layer sizes agree with the mapping's neurons."""
    torch.manual_seed(0)
    paths = []
    for c in (2, 3):
        stm = STM(STMConfig(in_channels=c))
        paths.append(export_stm(stm, tmp_path / f"stm{c}.h5", (56, 56)))
    nets = read_branches(paths)
    assert list(nets) == ["mv", "r"]
    cfg = STMConfig()
    sizes = [w * h * v for w, (h, v) in zip(cfg.widths, cfg.layer_sizes(56, 56))]
    for chip in CHIPS.values():
        mp = map_network(nets, chip)
        assert [m.name for m in mp.layers][:3] == ["mv/conv1", "mv/conv2", "mv/conv3"]
        assert [m.neurons for m in mp.layers[:3]] == sizes
        assert mp.fits and mp.cores_used == sum(m.cores for m in mp.layers)
        assert mp.sequences_per_chip == chip.cores // mp.cores_used
        for m in mp.layers:
            assert m.cores >= math.ceil(m.neurons / chip.neurons_per_core)
    # Loihi, by hand: conv1 8x28x28 = 6,272 neurons -> ceil(/1024) = 7 cores (8 ch x 4 rows
    # x 28 = 896 each); conv2/3 12,544 -> at least 13, but 13 is prime and no tiling of
    # 16 channels, 28 rows or 28 columns gives 13 tiles (ceil(28/2) = 14, ceil(28/3) = 10):
    # 14 cores. Loihi 2 (8,192 a core): 1 and 2.
    lo = map_network(nets, LOIHI)
    assert [m.cores for m in lo.layers] == [7, 14, 14] * 2 and lo.cores_used == 70
    assert [m.cores_lower_bound for m in lo.layers] == [7, 13, 13] * 2
    assert [m.cores for m in map_network(nets, LOIHI2).layers] == [1, 2, 2] * 2
    assert any("binary spikes" in n for n in map_network(nets, LOIHI).notes)
    assert not any("binary spikes" in n for n in map_network(nets, LOIHI2).notes)
    mp = map_network(nets, LOIHI)
    d = read_mapping(write_mapping(mp, tmp_path / "mapping.json"))
    assert d == json.loads(json.dumps(mp.to_dict()))  # round trip
    (tmp_path / "old.json").write_text(json.dumps({**d, "version": 0}))
    with pytest.raises(ValueError, match="old.json: format 'hybrid-mapping' version 0"):
        read_mapping(tmp_path / "old.json")
    assert {"chip", "layers", "cores_total", "fits"} <= set(d)
    assert (d["format"], d["version"]) == ("hybrid-mapping", 1)
    assert {"name", "neurons", "synapses", "cores"} <= set(d["layers"][0])


def test_cli_map(tmp_path):
    from click.testing import CliRunner

    from hybrid.cli import main

    torch.manual_seed(1)
    for c in (2, 3):
        export_stm(STM(STMConfig(in_channels=c)), tmp_path / f"b{c}.h5", (24, 32))
    run = CliRunner().invoke
    res = run(main, ["map", str(tmp_path), "--chip", "loihi", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["chip"] == "loihi" and d["cores_total"] == 128 and d["fits"] is True
    assert [m["name"] for m in d["layers"]] == [f"{b}/conv{i}" for b in ("mv", "r")
                                                 for i in (1, 2, 3)]
    assert d["layers"][0]["neurons"] == 8 * 12 * 16
    assert d["cores_used"] == sum(m["cores"] for m in d["layers"])
    text = run(main, ["map", str(tmp_path / "b2.h5"), str(tmp_path / "b3.h5")])
    assert text.exit_code == 0 and "cores used:" in text.output and "mv/conv3" in text.output
    big = run(main, ["map", str(tmp_path), "--chip", "loihi", "--size", "224x224"])
    assert big.exit_code == 1 and "fits: no" in big.output
    (tmp_path / "empty").mkdir()
    bad = run(main, ["map", str(tmp_path / "empty")])
    assert bad.exit_code == 1 and "no STM .h5 files" in bad.output
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    bad = run(main, ["map", str(tmp_path / "junk.h5")])
    assert bad.exit_code == 1 and "junk.h5" in bad.output


def test_artifact_manifest_folder(tmp_path):
    """A deploy artifact folder: the STM files its manifest.json lists (issue 9's
    format: files [{path, role, bytes, sha256}]), nothing else in the folder."""
    torch.manual_seed(2)
    (tmp_path / "stm").mkdir()
    files = []
    for c, name in ((2, "stm/mv.h5"), (3, "stm/r.h5")):
        p = export_stm(STM(STMConfig(in_channels=c)), tmp_path / name, (16, 16))
        files.append({"path": name, "role": f"stm:{name[4:6]}", "bytes": p.stat().st_size,
                      "sha256": hashlib.sha256(p.read_bytes()).hexdigest()})
    export_stm(STM(STMConfig()), tmp_path / "stray.h5", (8, 8))  # not listed: ignored
    (tmp_path / "manifest.json").write_text(json.dumps({"files": files}))
    nets = read_branches([tmp_path])
    assert list(nets) == ["mv", "r"] and nets["mv"].input_shape == (2, 16, 16)
    data = (tmp_path / "stm/r.h5").read_bytes()
    (tmp_path / "stm/r.h5").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size
    with pytest.raises(ValueError, match="r.h5: altered"):
        read_branches([tmp_path])
    (tmp_path / "stm/r.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="r.h5: truncated"):
        read_branches([tmp_path])


def test_cli_map_real_artifact(deployed, tmp_path):
    """`hybrid map DIR` on a `hybrid deploy` folder: by default the chip its mapping.json
    was made for, and the same mapping; another chip recomputed from its STM files; a
    corrupted mapping.json is an error naming it."""
    import shutil

    from click.testing import CliRunner

    from hybrid.cli import main

    run = CliRunner().invoke
    stored = read_mapping(deployed.mapping_path)
    res = run(main, ["map", str(deployed.path), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == stored and stored["chip"] == "loihi2"
    assert "warning" not in res.stderr
    lo = run(main, ["map", str(deployed.path), "--chip", "loihi", "--json"])
    assert lo.exit_code == 0, lo.output
    d = json.loads(lo.stdout)
    assert d["chip"] == "loihi" and d["branches"] == stored["branches"]
    assert [m["neurons"] for m in d["layers"]] == [m["neurons"] for m in stored["layers"]]
    text = run(main, ["map", str(deployed.path)])
    assert text.exit_code == 0 and "mv/conv1" in text.stdout and "Loihi 2" in text.stdout
    bad = tmp_path / "copy"
    shutil.copytree(deployed.path, bad)
    (bad / "mapping.json").write_text((bad / "mapping.json").read_text()[:-2])
    res = run(main, ["map", str(bad)])
    assert res.exit_code == 1 and "mapping.json" in res.stderr and "Traceback" not in res.stderr
