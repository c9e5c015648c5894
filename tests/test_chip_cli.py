"""`hybrid chip` on a deploy artifact of a tiny random model and a synthetic set; its
errors (bad artifact, missing extra, unknown preset) are one line each."""
import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from hybrid.cli import main

SIZE, VIDEO = 24, (64, 48)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """A random tiny model deployed as `hybrid deploy` does by default (mapping.json for
    loihi2), and its synthetic dataset."""
    return _deploy(tmp_path_factory.mktemp("chip"))


def _deploy(root, chip=None):
    from deploy.artifact.folder import write_artifact
    from hybrid.data.sources import load_split
    from hybrid.model import HybridConfig, HybridModel
    from hybrid.ondevice.artifacts import BRANCHES, input_spec
    from hybrid.video.synth import SynthConfig, make_dataset

    data = root / "data"
    make_dataset(data, classes=2, per_class=4, seed=2, cfg=SynthConfig(size=VIDEO, frames=24))
    classes = load_split(data, "test")[1]
    torch.manual_seed(0)
    cfg = HybridConfig(num_classes=len(classes), segments=2, size=(SIZE, SIZE),
                       stm={"weight_scale": 10.0, "widths": (4, 6, 5)})
    model = HybridModel(cfg).eval()
    spec = input_spec(model)
    stms = {m: getattr(model, BRANCHES[m]).stm for m in spec.stm_modalities}
    kw = {} if chip is None else {"chip": chip}
    art = write_artifact(root / "art", stms, model.dense, spec, classes,
                         model_config=cfg.to_dict(), **kw)
    return art, data


def _run(*args):
    return CliRunner().invoke(main, ["chip", *map(str, args), "--video-size", "64x48"],
                              catch_exceptions=False)


@pytest.mark.slow
def test_chip_report_json(artifact, tmp_path):
    pytest.importorskip("sanafe", reason="SANA-FE is an optional extra: pip install -e '.[chip]'")
    art, data = artifact
    r = _run(art.path, data, "--sequences", 3, "--json", "--plot", tmp_path)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)  # stdout is the JSON alone (progress goes to stderr)
    # the default artifact maps onto loihi2; SANA-FE simulates loihi: remapped, and said
    note = [ln for ln in r.stderr.splitlines() if ln.startswith("note:")]
    assert len(note) == 1 and "'loihi2'" in note[0] and "'loihi'" in note[0], r.stderr
    assert "hybrid deploy --chip loihi" in note[0]
    assert "'loihi2'" in rep["neuro"]["mapping"]
    steps = rep["neuro"]["per_step"]
    T = art.inputs.timesteps
    assert len(steps["time_s"]) == len(steps["energy_j"]) == T + 2  # T + depth - 1
    assert all(t > 0 for t in steps["time_s"]) and all(e > 0 for e in steps["energy_j"])
    assert [s["name"] for s in rep["stages"]] == ["extract", "spiking", "bridge", "dense"]
    for s in rep["stages"]:  # the JSON contract: non-null time, energy and an interval
        assert {"name", "time_s", "energy_j", "source", "interval"} <= set(s)
        assert s["time_s"] > 0 and s["energy_j"] > 0, s["name"]
        assert s["interval"]["time_s"][0] <= s["time_s"] <= s["interval"]["time_s"][1]
        assert s["source"].split(" ")[0] in ("measured", "simulated", "estimated")
    assert rep["host"]["cpu"] and rep["host"]["power_source"]
    assert rep["host"]["timing"]["stages"]["extract"]["cold"]["wall_s"] > 0
    assert rep["calibration"]["energy"] == 0.12 and "calibration" in rep["stages"][1]
    assert pv_interval_ok(rep["per_video"])
    pv = rep["per_video"]
    assert pv["latency_s"] == pytest.approx(sum(s["time_s"] for s in rep["stages"]))
    assert pv["throughput_vps"] == pytest.approx(1 / max(s["time_s"] for s in rep["stages"]))
    assert pv["energy_j"] > 0
    assert rep["sequences_simulated"] == {"mv": 3, "r": 3}
    assert rep["bridge"]["bytes"] == art.bridge_bytes_per_video
    b = rep["neuro"]["branches"]["mv"]
    assert len(b["layers"]) == 3 and b["layers"][1]["source"].startswith("simulated")
    assert b["per_sequence"]["time_s"]["min"] <= b["per_sequence"]["time_s"]["max"]
    assert rep["tianjic"]["cores_needed"] >= rep["tianjic"]["snn_cores"] > 0
    for br in rep["neuro"]["branches"].values():  # layer 1's time is in every report
        assert br["layer1"]["time_s"] > 0 and br["layers"][0]["time_s_per_step"][0] > 0
    ch = rep["chips"]
    assert (ch["preset"], ch["count"], ch["mode"]) == ("loihi", 1, "one chip")
    assert (tmp_path / "chip_timeline.png").stat().st_size > 0
    text = _run(art.path, data, "--sequences", 1, "--accelerator", "jetson-orin",
                "--precision", "int8", "--link", "10gbe")
    assert text.exit_code == 0 and "Tianjic:" in text.output and "jetson" in text.output.lower()


def pv_interval_ok(pv) -> bool:
    iv = pv["interval"]
    return (iv["latency_s"][0] <= pv["latency_s"] <= iv["latency_s"][1]
            and iv["energy_j"][0] <= pv["energy_j"] <= iv["energy_j"][1])


@pytest.mark.slow
def test_chip_host_cpu_measures_the_dense_partition(artifact):
    pytest.importorskip("sanafe", reason="SANA-FE is an optional extra: pip install -e '.[chip]'")
    art, data = artifact
    r = _run(art.path, data, "--sequences", 1, "--accelerator", "host-cpu", "--host-batch", 2,
             "--host-videos", 2, "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    d = rep["dense"]
    assert d["accelerator"] == "host-cpu" and d["precision"] == "fp32"
    assert d["label"].startswith("measured (onnxruntime")
    assert d["time_s"] == d["measurement"]["batch_1"]["wall_s"]
    assert d["pipelined_time_s"] == pytest.approx(min(d["measurement"]["batch_n"]["wall_s"] / 2,
                                                      d["time_s"]))
    assert d["estimate"]["ratio_to_measured"] == pytest.approx(d["estimate"]["time_s"]
                                                               / d["time_s"])
    assert d["launches"] > 0 and d["calibration"]["launch_s"] > 0
    assert "upper bound" in d["energy_label"] or "RAPL" in d["energy_label"]
    assert rep["stages"][-1]["source"].startswith("measured")


def _error_line(r) -> str:
    lines = [ln for ln in r.output.splitlines() if ln.startswith("Error")]
    assert r.exit_code != 0 and len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


def test_bad_artifact_is_one_line(artifact, tmp_path):
    pytest.importorskip("sanafe")
    art, data = artifact
    bad = tmp_path / "bad"
    shutil.copytree(art.path, bad)
    (bad / "stm_r.h5").write_bytes(b"not hdf5")
    assert "stm_r.h5" in _error_line(_run(bad, data))
    assert "no such artifact" in _error_line(_run(tmp_path / "none", data))


def test_unknown_preset_is_one_line(artifact):
    art, data = artifact
    assert "unknown accelerator 'tpu9'" in _error_line(_run(art.path, data, "--accelerator",
                                                            "tpu9"))
    assert "unknown link 'usb9'" in _error_line(_run(art.path, data, "--link", "usb9"))
    assert "unknown board 'x'" in _error_line(_run(art.path, data, "--board", "x"))
    assert "no published per-event figures" in _error_line(
        _run(art.path, data, "--board", "kapoho-point"))


def test_missing_extra_is_one_line(artifact, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sanafe", None)
    art, data = artifact
    line = _error_line(_run(art.path, data))
    assert "pip install -e '.[chip]'" in line


@pytest.mark.slow
def test_chip_example_writes_its_figures(artifact, tmp_path, monkeypatch):
    import runpy
    import sys
    from pathlib import Path

    from hybrid.data.sources import load_split
    from hybrid.model import HybridConfig, HybridModel
    from hybrid.training import checkpoint

    pytest.importorskip("sanafe", reason="SANA-FE is an optional extra: pip install -e '.[chip]'")
    _, data = artifact
    cfg = HybridConfig(num_classes=2, segments=2, size=(SIZE, SIZE), stm={"widths": (4, 6, 5)})
    path = tmp_path / "ckpt.pt"
    checkpoint.save(path, model_config=cfg.to_dict(), train_config={},
                    classes=load_split(data, "test")[1], epoch=0,
                    model=HybridModel(cfg).state_dict())
    examples = Path(__file__).resolve().parents[1] / "examples"
    monkeypatch.setattr(sys, "argv", ["chip_timeline", "--checkpoint", str(path), "--data",
                                      str(data), "--out", str(tmp_path), "--sequences", "1"])
    monkeypatch.syspath_prepend(str(examples))
    runpy.run_path(str(examples / "chip_timeline.py"), run_name="__main__")
    for stem in ("chip_timeline", "chip_energy_by_stage"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 5000
        assert json.loads((tmp_path / f"{stem}.json").read_text())


def test_mapping_for_another_chip_is_remapped_with_a_note(artifact):
    from deploy.hardware.neurocores.mapping import map_network
    from deploy.hardware.neurocores.mapping_file import read_mapping
    from deploy.presets import CHIPS
    from hybrid.ondevice.chip_report import chip_mapping
    from neuro.export import read_network

    art, _ = artifact
    nets = {m: read_network(art.stm_path(m)) for m in art.inputs.stm_modalities}
    stored = read_mapping(art.mapping_path)
    assert stored["chip"] == "loihi2"
    mp, why = chip_mapping(nets, stored, "loihi")
    assert mp == map_network(nets, CHIPS["loihi"]).to_dict() != stored
    assert "\n" not in why and "mapping.json maps the STMs onto 'loihi2'" in why
    assert "SANA-FE simulates 'loihi'" in why
    same = map_network(nets, CHIPS["loihi"]).to_dict()
    assert chip_mapping(nets, same, "loihi") == (same, "the artifact's mapping.json")
    assert chip_mapping(nets, same, "loihi")[0] is same  # used as read, not recomputed
    mp, why = chip_mapping(nets, None, "loihi")
    assert mp == same and why.startswith("no mapping.json")


@pytest.mark.slow
def test_chip_places_by_the_artifacts_loihi_mapping(tmp_path):
    """`hybrid deploy --chip loihi` -> `hybrid chip`: no note, SANA-FE's cores per branch
    are the mapping.json's (layers 2..L), the report names it."""
    pytest.importorskip("sanafe", reason="SANA-FE is an optional extra: pip install -e '.[chip]'")
    from deploy.hardware.neurocores.mapping_file import read_mapping
    from deploy.presets import LOIHI

    art, data = _deploy(tmp_path, chip=LOIHI)
    stored = read_mapping(art.mapping_path)
    r = _run(art.path, data, "--sequences", 1, "--json")
    assert r.exit_code == 0, r.output
    assert "note:" not in r.stderr
    rep = json.loads(r.stdout)
    assert rep["neuro"]["mapping"] == "the artifact's mapping.json"
    assert rep["neuro"]["cores_used"] == stored["cores_used"]
    for m, b in rep["neuro"]["branches"].items():
        want = sum(lm["cores"] for lm in stored["layers"] if lm["name"].startswith(f"{m}/")
                   and not lm["name"].endswith("conv1"))
        assert b["cores"] == want, m


@pytest.mark.slow
def test_chip_sweep_writes_table_json_and_pareto(artifact, tmp_path):
    """One recorded simulation, 2 boards x 2 accelerators x 2 precisions x 2 batches: every
    point's presets, latency and energy in the JSON; the three files written."""
    pytest.importorskip("sanafe", reason="SANA-FE is an optional extra")
    art, data = artifact
    out = tmp_path / "sweep"
    r = _run(art.path, data, "--sweep", "--sequences", 1, "--board", "loihi", "--board",
             "nahuku-32", "--accelerator", "h100-sxm", "--accelerator", "tianjic-ann",
             "--precision", "fp16", "--precision", "int8", "--batch", 1, "--batch", 4,
             "--plot", out, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["combinations"] == 16
    assert len(res["points"]) == 12 and len(res["skipped"]) == 4  # tianjic-ann has no fp16
    assert res["report"]["sequences_simulated"] == {"mv": 1, "r": 1}  # recorded once
    for q in res["points"]:
        assert q["latency_s"] > 0 and q["energy_j"] > 0
        assert q["board"] in ("loihi", "nahuku-32") and q["batch"] in (1, 4)
    assert any(q["pareto"] for q in res["points"])
    assert res["evaluate_s"] < res["record_s"]
    for name in ("chip_sweep.json", "chip_sweep.txt", "chip_pareto.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "chip_sweep.json").read_text())["points"] == res["points"]


def test_chip_sweep_bad_input_is_one_line_and_writes_nothing(artifact, tmp_path):
    art, data = artifact
    out = tmp_path / "sweep"
    line = _error_line(_run(art.path, data, "--sweep", "--board", "loihi", "--plot", out))
    assert "nothing to vary" in line
    assert "--plot DIR" in _error_line(_run(art.path, data, "--sweep"))
    assert "unknown board 'nahuku-64'" in _error_line(
        _run(art.path, data, "--sweep", "--board", "nahuku-64", "--plot", out))
    assert "no board of the sweep" in _error_line(
        _run(art.path, data, "--sweep", "--board", "kapoho-point", "--accelerator",
             "a100-sxm", "--accelerator", "h100-sxm", "--plot", out))
    assert "several only with --sweep" in _error_line(
        _run(art.path, data, "--link", "10gbe", "--link", "on-chip"))
    assert not out.exists()
