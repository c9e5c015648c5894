"""Hybrid-chip estimates without SANA-FE: target presets, the dense roofline, the link."""
import dataclasses
import math

import pytest

from ann.config import VARIANTS, DenseConfig
from ann.counting import count
from deploy.hardware.dense.roofline import DenseLayer, dense_layers, roofline, summarise
from deploy.hardware.link import bridge_transfer
from deploy.hardware.targets import (
    ACCELERATORS,
    HYBRID_CHIPS,
    LINKS,
    AcceleratorPreset,
    LinkPreset,
    accelerator,
    link,
)
from deploy.presets import ENERGY_PRESETS, PresetError

ALL = [*ACCELERATORS.values(), *LINKS.values(), *HYBRID_CHIPS.values()]


@pytest.mark.parametrize("preset", ALL, ids=lambda p: p.name)
def test_every_preset_names_its_source(preset):
    assert len(preset.source) > 40 and preset.title


def test_presets_cover_a_datacentre_gpu_an_edge_module_and_tianjic():
    assert {"h100-sxm", "jetson-orin", "tianjic-ann"} <= set(ACCELERATORS)
    assert "SECONDARY" in ACCELERATORS["tianjic-ann"].source
    assert "SECONDARY" in HYBRID_CHIPS["tianjic"].source


@pytest.mark.parametrize("lookup,name,what", [
    (accelerator, "h200", "accelerator"), (link, "pcie9", "link")])
def test_unknown_preset_name_is_one_clear_line(lookup, name, what):
    with pytest.raises(PresetError) as e:
        lookup(name)
    msg = str(e.value)
    assert "\n" not in msg and f"unknown {what} {name!r}" in msg and "choose from" in msg


@pytest.mark.parametrize("kwargs,field", [
    ({"memory_bw": 0.0}, "memory_bw"), ({"board_power_w": float("nan")}, "board_power_w"),
    ({"peak_ops": {"fp8": 1e12}}, "peak_ops"), ({"peak_ops": {"fp16": -1.0}}, "fp16"),
    ({"source": ""}, "source")])
def test_bad_accelerator_values_are_refused(kwargs, field):
    base = dict(name="x", title="X", peak_ops={"fp16": 1e12}, memory_bw=1e9,
                board_power_w=10.0, source="a data sheet")
    with pytest.raises(PresetError, match=field):
        AcceleratorPreset(**(base | kwargs))


def test_bad_link_values_are_refused():
    with pytest.raises(PresetError, match="bandwidth"):
        LinkPreset("x", "X", 0.0, 1e-12, 0.0, "spec")
    with pytest.raises(PresetError, match="latency"):
        LinkPreset("x", "X", 1e9, 1e-12, -1.0, "spec")


def test_missing_precision_names_the_ones_there():
    with pytest.raises(PresetError, match="no fp16 peak; it has int8"):
        accelerator("tianjic-ann").macs_per_s("fp16")


CONFIGS = [
    dataclasses.replace(VARIANTS["tiny"], image_size=(36, 44), stm_size=(9, 11), segments=2),
    dataclasses.replace(VARIANTS["tiny"], encoder="cross", pooling="cls", segments=3),
    dataclasses.replace(VARIANTS["tiny"], modalities=("i", "r"), rrdb=False, mixer=False),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["odd-size", "cross-cls", "i-r-no-mixer"])
def test_dense_layers_macs_equal_the_analytic_count(cfg: DenseConfig):
    layers = dense_layers(cfg)
    assert sum(la.macs for la in layers) == sum(c.macs for c in count(cfg))
    assert all(la.macs > 0 and la.activation_values > 0 for la in layers)
    params = sum(c.params for c in count(cfg))
    used = sum(la.weight_values for la in layers)
    # weights read by MAC layers: all but the norms, encodings and biases-free extras
    assert 0.9 * params < used <= params
    assert any(la.name.endswith("attn.matmul") for la in layers)  # Q K^T and A V


def test_roofline_is_the_max_of_compute_and_memory_time():
    acc = AcceleratorPreset("t", "T", {"fp16": 2e12, "int8": 4e12}, 1e9, 100.0, "test")
    layers = [DenseLayer("compute", 10**9, 1000, 1000), DenseLayer("memory", 10, 10**6, 0)]
    est = roofline(layers, acc, "fp16", ENERGY_PRESETS["45nm-fp16"])
    c, m = est
    assert c.bound == "compute" and c.time_s == pytest.approx(1e9 / 1e12)
    assert c.bytes == 2 * 2000 and c.memory_s == pytest.approx(4000 / 1e9)
    assert m.bound == "memory" and m.time_s == pytest.approx(2e6 / 1e9)
    assert c.energy_j == pytest.approx(100.0 * c.time_s)
    assert c.energy_j_per_op == pytest.approx(1e9 * 1.5e-12)
    int8 = roofline(layers, acc, "int8")
    assert int8[0].time_s == pytest.approx(1e9 / 2e12) and int8[1].bytes == 10**6
    s = summarise(est, acc, "fp16")
    assert s["time_s"] == pytest.approx(c.time_s + m.time_s)
    assert s["macs"] == 10**9 + 10 and s["label"].startswith("estimated")


def test_link_time_and_energy():
    lk = LinkPreset("l", "L", 1e9, 2e-12, 1e-6, "spec")
    r = bridge_transfer(10**6, lk, transfers=2)
    assert r["time_s"] == pytest.approx(2e-6 + 1e-3)
    assert r["energy_j"] == pytest.approx(8e6 * 2e-12)
    with pytest.raises(ValueError, match="transfers"):
        bridge_transfer(1, lk, transfers=0)


def test_tianjic_dense_cores_by_hand():
    from deploy.hardware.targets import TIANJIC
    from deploy.hardware.tianjic import dense_cores

    assert TIANJIC.weights_per_core == 22 * 1024
    # 696 -> 2088 linear: fan-in in 3 groups of <= 256; 256 inputs x 88 outputs fill 22 KB
    assert dense_cores(DenseLayer("fc", 1, 696 * 2088, 1, 696, 2088), TIANJIC) == (
        3 * math.ceil(2088 / 88), "memory")
    # 64 -> 10: one core, neurons and memory to spare
    n, _ = dense_cores(DenseLayer("head", 1, 640, 1, 64, 10), TIANJIC)
    assert n == 1


def test_tianjic_verdict_counts_both_partitions(tmp_path):
    import neuro  # noqa: F401
    from deploy.hardware.neurocores.mapping import map_network
    from deploy.hardware.targets import TIANJIC
    from deploy.hardware.tianjic import verdict
    from neuro.export import export_stm, read_network
    from neuro.stm import STM, STMConfig

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    nets = {m: read_network(export_stm(STM(STMConfig(in_channels=c)), tmp_path / f"{m}.h5",
                                       (12, 10))) for m, c in (("mv", 2), ("r", 3))}
    cfg = CONFIGS[0]
    v = verdict(nets, dense_layers(cfg), TIANJIC)
    assert v["snn_cores"] == map_network(nets, TIANJIC.snn_mode()).cores_used
    assert v["cores_needed"] == v["snn_cores"] + v["ann_cores"]
    assert v["chips_needed"] == math.ceil(v["cores_needed"] / 156)
    assert v["unmappable"] and not v["fits_one_chip"]  # attention's matmuls
    assert any("Q K^T" in w for w in v["why_not"])


@pytest.mark.parametrize("variant,size,segments", [
    ("tiny", 48, 3),  # the demo's model
    pytest.param("base", 224, 8, marks=pytest.mark.slow)])  # the paper's setting
def test_tianjic_verdict_of_tiny_and_base(variant, size, segments):
    """Neither fits one Tianjic chip; the STMs are bound by the 256 input axons a core,
    the dense layers by 22 KB of weights a core, and attention's matmuls cannot be mapped
    (docs/benchmarks.md, "Tianjic")."""
    torch = pytest.importorskip("torch")
    from deploy.hardware.targets import TIANJIC
    from deploy.hardware.tianjic import verdict
    from hybrid.model import HybridConfig, HybridModel
    from hybrid.ondevice.chip_report import exported_stms

    torch.manual_seed(0)
    model = HybridModel(HybridConfig(variant=variant, num_classes=101, segments=segments,
                                     size=(size, size)))
    with exported_stms(model) as (_, nets):
        v = verdict(nets, dense_layers(model.dense.cfg), TIANJIC)
    assert not v["fits_one_chip"] and v["chips_needed"] > 1
    assert {la["binding"] for la in v["snn_layers"]} == {"fan_in_axons"}
    assert max(v["binding_cores"], key=v["binding_cores"].get) == "fan_in_axons"
    assert "binding per-core limit: fan_in_axons" in v["why_not"][0]
    big = [la for la in v["ann_layers"] if la["weights"] > TIANJIC.weights_per_core]
    assert big and all(la["binding"] == "memory" for la in big)
    assert v["unmappable"] and "Q K^T" in v["why_not"][1]
