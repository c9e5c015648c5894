"""`hybrid profile` on a checkpoint and videos, its agreement with `hybrid summary`, and
every energy-analysis example on a tiny model."""
import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.model import HybridConfig, HybridModel
from hybrid.training import checkpoint

SIZE = 32
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from hybrid.video.synth import SynthConfig, make_dataset

    out = tmp_path_factory.mktemp("synth")
    make_dataset(out, classes=2, per_class=4, seed=0, cfg=SynthConfig(size=(64, 48), frames=24))
    return out


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, data):
    """A randomly initialised tiny model (2 segments) saved as a training checkpoint."""
    from hybrid.data.sources import load_split

    torch.manual_seed(0)
    cfg = HybridConfig(num_classes=2, segments=2, size=(SIZE, SIZE))
    path = tmp_path_factory.mktemp("run") / "checkpoint.pt"
    checkpoint.save(path, model_config=cfg.to_dict(), train_config={},
                    classes=load_split(data, "test")[1], epoch=0,
                    model=HybridModel(cfg).state_dict())
    return path, cfg


def _profile(args):
    r = CliRunner().invoke(main, ["profile", *map(str, args), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_profile_json_keys_and_dense_macs_equal_summary(ckpt, data):
    path, cfg = ckpt
    rep = _profile([path, data, "--views", "4x3"])
    assert rep["preset"]["name"] == "45nm-fp32" and rep["views"] == "4x3"
    for r in rep["layers"]:
        assert {"name", "partition", "kind", "ops", "energy_j"} <= set(r)
        assert r["partition"] in ("spiking", "bridge", "dense") and r["kind"] in ("mac", "ac")
        if r["partition"] == "spiking":
            assert {"input_spikes", "fan_out_max", "firing_rate"} <= set(r)
    assert {"macs", "acs", "energy_j"} <= set(rep["per_video"])
    names = [r["name"] for r in rep["layers"]]
    assert names[:4] == ["stm.mv.1", "stm.mv.2", "stm.mv.3", "bridge.mv"]
    # hybrid summary of the same configuration: one clip; 4x3 views = 2 clips x 3 crops
    r = CliRunner().invoke(main, [
        "summary", "--variant", cfg.variant, "--size", str(SIZE), "--segments",
        str(cfg.segments), "--classes", str(cfg.num_classes), "--json"])
    assert r.exit_code == 0, r.output
    summ = {c["name"]: c["macs"] for c in json.loads(r.stdout)["components"]}
    views = 2 * 3
    dense = {r["name"]: r["ops"] for r in rep["layers"] if r["partition"] == "dense"}
    assert dense == {n: m * views for n, m in summ.items() if not n.startswith("stm.") and m}
    assert rep["partitions"]["dense"]["macs"] == views * sum(
        m for n, m in summ.items() if not n.startswith("stm."))
    # and the STM's analog first layer: the same dense MACs as summary's stm rows
    layers = {r["name"]: r for r in rep["layers"]}
    for m in ("mv", "r"):
        assert layers[f"stm.{m}.1"]["ops"] == summ[f"stm.{m}"] * views


def test_profile_text_presets_and_errors(ckpt, data, tmp_path):
    path, _ = ckpt
    r = CliRunner().invoke(main, ["profile", str(path), str(data), "--preset", "loihi",
                                  "--plots", str(tmp_path / "plots"), "--videos", "1"])
    assert r.exit_code == 0, r.output
    for word in ("stm.mv.2", "bridge.r", "encoder.unified", "paper's reading", "0.734",
                 "loihi"):
        assert word in r.output
    assert (tmp_path / "plots" / "ops_per_layer.png").stat().st_size > 0
    assert (tmp_path / "plots" / "energy_by_partition.png").stat().st_size > 0
    custom = tmp_path / "p.json"
    custom.write_text(json.dumps({"name": "mine", "mac_j": 1e-12, "ac_j": 1e-13}))
    rep = _profile([path, data, "--preset", custom, "--videos", "1"])
    assert rep["preset"]["name"] == "mine"
    assert rep["layers"][-1]["energy_j"] == pytest.approx(rep["layers"][-1]["ops"] * 1e-12)
    for args, msg in ((["--preset", "nope"], "unknown energy preset"),
                      (["--views", "3x1"], "multiple"), (["--views", "2x2"], "crops")):
        r = CliRunner().invoke(main, ["profile", str(path), str(data), *args])
        assert r.exit_code == 2 and msg in r.output, r.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    r = CliRunner().invoke(main, ["profile", str(bad), str(data)])
    assert r.exit_code == 1 and "bad.pt" in r.output


@pytest.mark.parametrize("name,extra", [
    ("ops_per_layer", []), ("energy_by_preset", []), ("firing_rates", []),
    ("energy_vs_accuracy", []), ("lif_sensitivity", ["--layer", "stm_res.2"])])
def test_every_example_writes_a_png_and_json(ckpt, data, tmp_path, monkeypatch, name, extra):
    path, _ = ckpt
    args = ["--checkpoint", str(path), "--out", str(tmp_path)]
    if name != "lif_sensitivity":
        args += ["--data", str(data), "--videos", "2"]
    monkeypatch.setattr(sys, "argv", [name, *args, *extra])
    monkeypatch.syspath_prepend(str(EXAMPLES))
    runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
    assert (tmp_path / f"{name}.png").stat().st_size > 5000
    numbers = json.loads((tmp_path / f"{name}.json").read_text())
    assert numbers
    if name == "lif_sensitivity":  # the high-rate train fires, the low-rate one does not
        assert numbers["runs"]["high"]["spikes"] and not numbers["runs"]["low"]["spikes"]
    if name == "firing_rates":
        assert set(numbers["firing_rate_per_step"]) == {"mv", "r"}
        assert all(len(v) == 11 for layers in numbers["firing_rate_per_step"].values()
                   for v in layers.values())


@pytest.mark.slow
def test_profile_spikes_from_lava_equal_torch_qat(data, tmp_path):
    """A fixed-point (qat) model: `--spikes lava` (its STMs exported and run on Lava
    fixed_pt) gives the same counts, layer by layer, as the torch STMs."""
    from hybrid.data.sources import load_split

    torch.manual_seed(1)
    cfg = HybridConfig(num_classes=2, segments=1, size=(24, 24), quant="qat")
    path = tmp_path / "qat.pt"
    checkpoint.save(path, model_config=cfg.to_dict(), train_config={},
                    classes=load_split(data, "test")[1], epoch=0,
                    model=HybridModel(cfg).state_dict())
    reps = {s: _profile([path, data, "--videos", "1", "--spikes", s]) for s in ("torch", "lava")}
    assert reps["lava"]["spikes"] == "lava"
    keys = ("name", "ops", "input_spikes", "input_events", "synops", "firing_rate_per_step")
    for t, lv in zip(reps["torch"]["layers"], reps["lava"]["layers"]):
        assert {k: t.get(k) for k in keys} == {k: lv.get(k) for k in keys}
    spiking = [r for r in reps["lava"]["layers"] if r["kind"] == "ac"]
    assert all(r["input_spikes"] > 0 for r in spiking), "no spikes: a weak test"


@pytest.mark.slow
def test_profile_of_deploy_folder_equals_its_checkpoint_in_qat(trained, deployed):
    """`hybrid profile DIR` (the artifact's STM files run on the hybrid runtime's Lava
    networks) == `hybrid profile CHECKPOINT --quant qat` (its source model's torch STMs in
    fixed point), layer by layer, dense rows included; the artifact in torch too."""
    data, ck = trained
    common = [data, "--videos", "2", "--views", "4x1", "--video-size", "64x48"]
    reps = {"deploy": _profile([deployed.path, *common]),
            "deploy-torch": _profile([deployed.path, *common, "--spikes", "torch"]),
            "checkpoint": _profile([ck, *common, "--quant", "qat"])}
    assert (reps["deploy"]["source"], reps["deploy"]["spikes"]) == ("deploy", "lava")
    assert reps["checkpoint"]["quant"] == "qat" and reps["deploy"]["views"] == "4x1"
    keys = ("name", "partition", "kind", "ops", "input_spikes", "input_events", "synops",
            "neuron_updates", "firing_rate_per_step", "energy_j")
    ref = [{k: r.get(k) for k in keys} for r in reps["checkpoint"]["layers"]]
    for name in ("deploy", "deploy-torch"):
        assert [{k: r.get(k) for k in keys} for r in reps[name]["layers"]] == ref, name
        assert reps[name]["per_video"] == reps["checkpoint"]["per_video"], name
    spiking = [r for r in reps["deploy"]["layers"] if r["kind"] == "ac"]
    assert len(spiking) == 4 and all(r["input_spikes"] > 0 for r in spiking), "a weak test"
    # the float model spikes differently: the comparison can fail
    flt = _profile([ck, *common])
    assert flt["quant"] == "float"
    assert [r["synops"] for r in flt["layers"] if r["kind"] == "ac"] != [
        r["synops"] for r in spiking]


def test_profile_deploy_folder_errors(deployed, trained, tmp_path):
    data, _ = trained
    r = CliRunner().invoke(main, ["profile", str(deployed.path), str(data), "--quant", "qat"])
    assert r.exit_code == 2 and "--quant" in r.output
    import shutil

    bad = tmp_path / "art"
    shutil.copytree(deployed.path, bad)
    (bad / "stm_mv.h5").unlink()
    r = CliRunner().invoke(main, ["profile", str(bad), str(data)])
    assert r.exit_code == 1 and "stm_mv.h5: missing" in r.output and "Traceback" not in r.output
