"""The measured host stages of `hybrid chip` (hybrid/ondevice/host_timing.py), the host's
power (deploy/hardware/host.py), the honest roofline (launch floor, achieved fraction)
and the intervals every stage carries (deploy/hardware/uncertainty.py)."""
import numpy as np
import pytest

from deploy.hardware import host, uncertainty
from deploy.hardware.dense.roofline import DenseLayer, roofline, summarise
from deploy.hardware.targets import AcceleratorPreset
from hybrid.ondevice import host_timing

VIDEO = (64, 48)


# ---- warm timing: the cold first read is reported apart ----

def test_a_cold_first_read_does_not_enter_the_median():
    clock = {"t": 0.0}
    costs = iter([100.0, 1.0, 3.0, 2.0])  # the cold call, then one warm call per item

    def fn(item):
        clock["t"] += next(costs)
        return item

    out = host_timing.time_each(["a", "b", "c"], fn, clock=lambda: clock["t"],
                                cpu_clock=lambda: clock["t"] / 2)
    assert out["cold"] == {"wall_s": 100.0, "cpu_s": 50.0}
    warm = [w["wall_s"] for w in out["warm"]]
    assert warm == [1.0, 3.0, 2.0] and [w["out"] for w in out["warm"]] == ["a", "b", "c"]
    s = host_timing.summary(warm)
    assert s["median"] == 2.0 and s["max"] == 3.0  # 100 s nowhere
    assert s["median_ci95"][0] >= 1.0 and s["median_ci95"][1] <= 3.0


def test_draw_is_seeded_distinct_and_spans_the_set():
    a = host_timing.draw(100, 10, seed=3)
    assert a == host_timing.draw(100, 10, seed=3) != host_timing.draw(100, 10, seed=4)
    assert len(set(a)) == 10 and max(a) > 10  # not the first ten
    assert sorted(host_timing.draw(4, 10, seed=0)) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        host_timing.draw(0, 1, seed=0)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from hybrid.data.dataset import CompressedVideoDataset
    from hybrid.data.sources import load_split
    from hybrid.video.synth import SynthConfig, make_dataset

    root = tmp_path_factory.mktemp("host") / "data"
    make_dataset(root, classes=2, per_class=8, seed=1, cfg=SynthConfig(size=VIDEO, frames=36))
    items, _ = load_split(root, "test")

    def ds(size):
        return CompressedVideoDataset(root, items, segments=2, train=False, crop=24,
                                      video_size=size)
    return ds


def test_host_stages_on_videos_in_form_have_no_transcode(synth):
    ds = synth(VIDEO)
    meas = host_timing.measure(ds, segments=2, videos=3, seed=0)
    st = meas["stages"]
    assert set(st) == {"extract", "decode"} and meas["transcoded"] == 0
    ex = st["extract"]
    assert ex["videos"] == 3 and len(ex["wall_s"]["values"]) == 3
    assert ex["cold"]["wall_s"] > 0  # reported apart
    # 36 frames = 3 GOPs; 2 segments of 3 GOPs -> GOPs 0 and 1 (evaluation: each half's
    # middle), 12 frames each, decoded once
    assert ex["frames"] == [24, 24, 24]
    assert ex["vs_plain_decode"] == pytest.approx(ex["wall_s"]["median"]
                                                  / st["decode"]["wall_s"]["median"])
    stages, reps = host_timing.stages(meas)
    assert [s["name"] for s in stages] == ["extract"]
    s = stages[0]
    assert s["source"].startswith("measured (compressed-domain extraction")
    assert s["time_s"] == pytest.approx(ex["wall_s"]["median"]) and s["energy_j"] > 0
    lo, hi = s["interval"]["time_s"]
    assert lo <= s["time_s"] <= hi
    assert reps["extract"][0].shape == (uncertainty.DRAWS,)


def test_a_source_needing_transcoding_reports_the_transcode_as_its_own_stage(synth):
    ds = synth((32, 24))  # the videos are 64x48: each is transcoded first
    meas = host_timing.measure(ds, segments=2, videos=2, seed=1)
    assert meas["transcoded"] == 2
    stages, _ = host_timing.stages(meas)
    assert [s["name"] for s in stages] == ["transcode", "extract"]
    tr, ex = stages
    assert tr["source"].startswith("measured (transcoding") and "2 of the 2" in tr["source"]
    assert "transcod" not in ex["source"].split(";")[0]
    assert tr["time_s"] > 0 and ex["time_s"] > 0
    # the extraction read the transcoded copies (32x24): 2 GOPs of 12 frames
    assert meas["stages"]["extract"]["frames"] == [24, 24]


# ---- host CPU and power ----

def test_read_cpu_and_power_preset(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\n"
                 "model name\t: Intel(R) Xeon(R) Processor\ncpu MHz\t\t: 2300.000\n"
                 "flags\t\t: fpu avx2 fma avx512f hypervisor\n\nprocessor\t: 1\n")
    cpu = host.read_cpu(f)
    assert (cpu.family, cpu.model, cpu.mhz) == (6, 207, 2300.0)
    assert cpu.flags == ("avx512f", "avx2", "fma") and cpu.hypervisor
    p, matched = host.power_preset(cpu)
    assert matched and p.watts_per_core == pytest.approx(350 / 64)
    j, label = host.host_energy(2.0, None, cpu)
    assert j == pytest.approx(2.0 * 350 / 64) and label.startswith("estimated (CPU time x")
    other = host.HostCpu("Some CPU", "AuthenticAMD", 25, 1, 2, 3000.0, (), False)
    assert host.power_preset(other) == (host.FALLBACK_POWER, False)
    assert "assumed" in host.host_energy(1.0, None, other)[1]
    j, label = host.host_energy(2.0, 7.5, cpu)
    assert j == 7.5 and label.startswith("measured (RAPL")


def test_rapl_meter_reads_the_package_counters_and_their_wrap(tmp_path):
    d = tmp_path / "intel-rapl:0"
    d.mkdir()
    (d / "energy_uj").write_text("999000000\n")
    (d / "max_energy_range_uj").write_text("1000000000\n")
    (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-domain (core): not counted twice
    m = host.EnergyMeter(tmp_path)
    assert m.measured and [p.name for p in m.domains] == ["intel-rapl:0"]
    m.start()
    (d / "energy_uj").write_text("500000\n")  # wrapped: 1,000,000 J range
    assert m.stop() == pytest.approx(1.5)  # 1.0 J to the wrap + 0.5 J after
    none = host.EnergyMeter(tmp_path / "absent")
    none.start()
    assert not none.measured and none.stop() is None


def test_describe_names_the_cpu_and_the_power_source():
    cpu = host.read_cpu()
    h = host.describe(cpu, 1, host.EnergyMeter(host.POWERCAP))
    assert h["cpu"] == cpu.cpu and h["threads_used"] == 1 and h["power_source"]


# ---- the roofline: launch floor and achieved fraction ----

def test_roofline_with_launch_floor_and_achieved_fraction_by_hand():
    acc = AcceleratorPreset("x", "X", {"fp32": 2e9}, 1e9, 10.0, "a data sheet",
                            launch_s=1e-3, achieved_fraction=0.5, overhead_source="by hand")
    layers = [DenseLayer("a", 1_000_000, 1000, 1000),  # compute: 1e6 / (1e9 x 0.5) = 2 ms
              DenseLayer("b", 1000, 250_000, 250_000)]  # memory: 4 x 5e5 / 1e9 = 2 ms
    est = roofline(layers, acc, "fp32", launches=5)
    assert [e.name for e in est] == ["a", "b", "other ops (3 launches)"]
    assert est[0].time_s == pytest.approx(2e-3 + 1e-3) and est[0].bound == "compute"
    assert est[0].ideal_s == pytest.approx(1e-3)  # peak rate, no launch
    assert est[1].time_s == pytest.approx(2e-3 + 1e-3) and est[1].bound == "memory"
    assert est[2].time_s == pytest.approx(3e-3) and est[2].bound == "launch"
    d = summarise(est, acc, "fp32")
    assert d["time_s"] == pytest.approx(9e-3) and d["ideal_s"] == pytest.approx(3e-3)
    assert d["energy_j"] == pytest.approx(9e-3 * 10.0)
    assert d["launch_s"] == 1e-3 and d["achieved_fraction"] == 0.5


def test_gpu_presets_carry_their_overheads_with_a_source():
    from deploy.hardware.targets import ACCELERATORS

    for name in ("h100-sxm", "a100-sxm", "jetson-orin"):
        a = ACCELERATORS[name]
        assert a.launch_s > 0 and 0 < a.achieved_fraction < 1
        assert "SECONDARY" in a.overhead_source


# ---- intervals ----

def test_bootstrap_of_constant_values_is_a_point_and_brackets_the_median():
    assert uncertainty.bounds(uncertainty.replicates([2.0] * 5)) == [2.0, 2.0]
    v = [1.0, 2.0, 3.0, 4.0, 50.0]
    lo, hi = uncertainty.bounds(uncertainty.replicates(v))
    assert 1.0 <= lo <= 3.0 <= hi <= 50.0
    with pytest.raises(ValueError):
        uncertainty.replicates([])


def _branch(values_t, values_e, steps=3):
    t, e = float(np.mean(values_t)), float(np.mean(values_e))
    return {"sequences_simulated": len(values_t),
            "per_sequence": {"time_s": {"mean": t, "values": list(values_t)},
                             "energy_j": {"mean": e, "values": list(values_e)}},
            "per_step": {k: [(t if k == "time_s" else e) / steps] * steps
                         for k in ("time_s", "energy_j", "synapse_j", "dendrite_j",
                                   "soma_j", "network_j")}}


def _report(pipelined=None):
    from deploy.hardware import report

    branches = {"mv": _branch([1.0, 1.0, 1.0], [10.0] * 3),
                "r": _branch([2.0, 2.0, 2.0], [20.0] * 3)}
    neuro = report.spiking_stage(branches, 2, None)  # in turn: 2 x (1 + 2) s
    host_stage = {"name": "extract", "time_s": 0.5, "energy_j": 0.25, "source": "measured",
                  "interval": uncertainty.interval(uncertainty.constant(0.5),
                                                   uncertainty.constant(0.25), "test")}
    bridge = {"time_s": 0.1, "energy_j": 0.01, "label": "estimated", "bytes": 10,
              "title": "L"}
    dense = {"time_s": 0.2, "energy_j": 1.0, "label": "measured", "title": "CPU",
             "precision": "fp32", "interval": {"time_s": [0.15, 0.25],
                                               "energy_j": [0.75, 1.25]}}
    if pipelined:
        dense["pipelined_time_s"] = pipelined
    rep = report.report(neuro, [host_stage], bridge, dense)
    host_reps = {"extract": (uncertainty.constant(0.5), uncertainty.constant(0.25))}
    dense_reps = (uncertainty.constant(0.2), uncertainty.constant(1.0))
    return uncertainty.attach(rep, host_reps, dense_reps)


def test_every_stage_has_time_energy_and_an_interval():
    rep = _report()
    assert [s["name"] for s in rep["stages"]] == ["extract", "spiking", "bridge", "dense"]
    for s in rep["stages"]:
        assert s["time_s"] is not None and s["energy_j"] is not None, s["name"]
        lo, hi = s["interval"]["time_s"]
        assert lo <= s["time_s"] <= hi, s["name"]
        lo, hi = s["interval"]["energy_j"]
        assert lo <= s["energy_j"] <= hi, s["name"]
    pv = rep["per_video"]
    assert pv["latency_s"] == pytest.approx(0.5 + 6.0 + 0.1 + 0.2)
    assert pv["energy_j"] == pytest.approx(0.25 + 60.0 + 0.01 + 1.0)
    assert pv["chip_energy_j"] == pytest.approx(61.01)
    # equal per-sequence values: the bootstrap interval is the point itself
    assert pv["interval"]["latency_s"] == pytest.approx([6.8, 6.8])
    sp = rep["stages"][1]
    assert sp["calibration"]["time_s"] == pytest.approx([6.0 * 0.75, 6.0 * 1.25])
    assert sp["calibration"]["energy_j"] == pytest.approx([60 * 0.88, 60 * 1.12])
    assert pv["calibration"]["latency_s"] == pytest.approx([6.8 - 1.5, 6.8 + 1.5])
    assert rep["calibration"]["latency"] == 0.25 and "TCAD 2025" in rep["calibration"]["source"]


def test_throughput_takes_a_stage_at_its_pipelined_time():
    rep = _report()
    assert rep["per_video"]["throughput_vps"] == pytest.approx(1 / 6.0)  # spiking slowest
    rep = _report(pipelined=0.05)
    assert rep["stages"][-1]["pipelined_time_s"] == 0.05
    assert rep["per_video"]["interval"]["throughput_vps"] == pytest.approx([1 / 6.0] * 2)


def test_spiking_replicates_follow_the_sequences():
    b = {"mv": _branch([1.0, 3.0], [1.0, 3.0])}
    t, e = uncertainty.spiking_replicates(b, time_s=4.0, energy_j=8.0, draws=500)
    # the stage = 2 x the branch mean; resampled means lie in [1, 3]
    assert t.min() >= 4.0 / 2 * 1 - 1e-9 and t.max() <= 4.0 / 2 * 3 + 1e-9
    assert np.median(t) == pytest.approx(4.0) and np.median(e) == pytest.approx(8.0)


# ---- sequences drawn across the set; the host-cpu roofline's inputs ----

def test_sequences_are_drawn_at_random_across_the_set(monkeypatch):
    """(video, segment) pairs drawn uniformly over the whole set, seeded; each video read
    once; an unreadable video replaced by further draws."""
    import torch

    from hybrid.ondevice import chip_report

    S, N = 3, 20

    def views(sample, segments, crop, n):  # (1, S, T, C, H, W): video * 10 + segment
        seg = torch.arange(segments, dtype=torch.float32).view(1, segments, 1, 1, 1, 1)
        return {"mv": (sample * 10 + seg).expand(1, segments, 2, 1, 1, 1)}

    monkeypatch.setattr(chip_report, "views", views)
    read = []

    class Fake:
        def __len__(self):
            return N

        def __getitem__(self, i):
            read.append(i)
            if i == 7:
                raise ValueError("video 7 cannot be read")
            return float(i)

    def draw(seed, n=5):
        read.clear()
        xs, videos = chip_report.sample_sequences(Fake(), S, (1, 1), ["mv"], n, seed=seed)
        pairs = [divmod(int(v), 10) for v in xs["mv"][:, 0, 0, 0, 0]]
        return pairs, list(read), videos

    pairs, read_a, videos = draw(0)
    assert (pairs, read_a) == draw(0)[:2] != draw(1)[:2]  # seeded
    assert len(pairs) == 5 and len(set(pairs)) == 5 and 7 not in {v for v, _ in pairs}
    assert len(set(read_a)) == len(read_a) and videos == len(set(read_a) - {7})
    assert max(v for v, _ in pairs) >= 5  # not the first few videos
    reached = set()
    for seed in range(30):
        reached |= set(draw(seed, n=12)[0])
    assert reached == {(v, k) for v in range(N) for k in range(S)} - {(7, k) for k in range(S)}
    # more sequences than readable pairs: all of them, no endless loop
    pairs, _, _ = draw(0, n=100)
    assert len(pairs) == (N - 1) * S


def test_typical_shape_is_the_mac_weighted_median_layer():
    from deploy.hardware.dense.onhost import theoretical_macs_per_s, typical_shape

    layers = [DenseLayer("small", 10 * 4 * 8, 0, 0, fan_in=4, outputs=8),
              DenseLayer("big", 100 * 16 * 32, 0, 0, fan_in=16, outputs=32),
              DenseLayer("attn.matmul", 10**9, 0, 0)]  # no weights: not a GEMM shape
    assert typical_shape(layers) == (100, 16, 32)
    assert typical_shape([DenseLayer("x", 5, 0, 0)]) == (512, 512, 512)
    assert theoretical_macs_per_s(2, 2300.0, ("avx512f", "fma")) == 2 * 2.3e9 * 16 * 2
    assert theoretical_macs_per_s(1, 1000.0, ("avx2",)) == 1e9 * 8 * 2
