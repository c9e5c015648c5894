"""Deploy: the bridge, the artifact folder (round trip, atomic writes, every corrupt
case), and `hybrid deploy` on a tiny trained model. The Lava runtime is tested in
tests/test_deploy_runtime.py."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from proctools import alive, descendants, sigint_default

from ann.onnx_export import load_torch
from deploy.artifact import folder as A
from deploy.artifact.bridge import BridgeSpec, SpikingBranch, to_dense, to_stm
from deploy.hardware.neurocores.mapping import map_network
from deploy.hardware.neurocores.mapping_file import read_mapping
from deploy.presets import CHIPS
from hybrid.cli import main
from neuro.export import load_stm, read_network
from neuro.stm import STMConfig

SIZE = 24  # the crop of the `trained` fixture's model (tests/conftest.py)
VIDEO = (64, 48)  # (W, H) of its synthetic videos: kept, not resized


# ---- the bridge ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 3, 2, 5, 7), (2, 3, 4, 3, 6, 4)])
def test_bridge_layouts_against_loops(shape):
    B, S, T, C, H, W = shape
    x = torch.randn(shape)
    seq = to_stm(x)
    assert seq.shape == (B * S, C, H, W, T)
    for b in range(B):
        for s in range(S):
            for t in range(T):
                assert torch.equal(seq[b * S + s, ..., t], x[b, s, t])
    v = torch.randn(B * S, 4, 3, 2)
    d = to_dense(v, B)
    assert d.shape == (B, S, 4, 3, 2)
    assert all(torch.equal(d[b, s], v[b * S + s]) for b in range(B) for s in range(S))
    assert np.array_equal(to_dense(v.numpy(), B), d.numpy())


def test_bridge_scale_equals_the_qat_stm(randomise_neurons):
    """Lava-style integer voltages through the bridge give the qat STM's float output."""
    torch.manual_seed(1)
    branch = SpikingBranch(STMConfig(widths=(3, 4, 5), input_frac_bits=6), timesteps=5)
    randomise_neurons(branch.stm, 1)
    x = torch.randn(2, 3, 5, 2, 10, 8) * (torch.rand(2, 3, 5, 1, 10, 8) < 0.4)
    with torch.no_grad():
        v, out = branch(x, quant="qat")
    blk = branch.stm.blocks[-1]
    _, v_scale = blk.fixed_point(1.0)
    spec = BridgeSpec("mv", "stm_mv.h5:layer/3/v", "mv", 3, 5, 5, 4, v_scale)
    v_int = np.round(out.v.double().numpy() * v_scale).astype(np.int64)  # integers, exact
    assert np.array_equal(spec.from_lava(v_int, batch=2), v.numpy())
    assert spec.values_per_video == 3 * 5 * 5 * 4 and spec.bytes_per_video == 3 * 5 * 5 * 4 * 3
    assert BridgeSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="feeds 'residual'"):
        BridgeSpec("r", "x", "mv", 3, 5, 5, 4, 1.0)
    with pytest.raises(ValueError, match=r"\(B, S, 5, C, H, W\)"):
        branch(x[:, :, :4])


def test_quant_mode_is_explicit_per_call():
    """A float STM asked for qat runs qat (and back), with no state left behind."""
    torch.manual_seed(2)
    branch = SpikingBranch(STMConfig(widths=(3, 3, 3)), timesteps=4)
    x = torch.randn(1, 2, 4, 2, 8, 8) * 2
    f1, _ = branch(x)
    q, _ = branch(x, quant="qat")
    f2, _ = branch(x)
    assert torch.equal(f1, f2) and not torch.equal(f1, q)
    assert branch.stm.quant == "float"
    with pytest.raises(ValueError, match="quant must be one of"):
        branch(x, quant="int8")


# ---- the artifact ----------------------------------------------------------------


def test_deploy_load_round_trip(deployed, trained):
    from hybrid.training.evaluate import load_model

    art = A.load_artifact(deployed.path)
    model, classes, _ = load_model(trained[1])
    m = art.manifest
    assert m["format"] == "hybrid-deploy" and m["version"] == A.VERSION
    assert m["source_checkpoint_sha256"] == A.sha256_file(trained[1])
    assert m["toolkit_version"] == A.toolkit_version() != ""
    roles = {f["role"]: f for f in m["files"]}
    assert set(roles) == {"stm:mv", "stm:r", "dense-onnx", "dense-torch", "spec", "mapping"}
    for f in m["files"]:
        p = art.path / f["path"]
        assert p.stat().st_size == f["bytes"] and A.sha256_file(p) == f["sha256"]
    assert art.classes == classes
    assert art.inputs.segments == 2 and art.inputs.timesteps == 11
    assert art.inputs.crop == art.inputs.stm_size == (SIZE, SIZE)
    assert art.inputs.fixed_point == {"mv": {"frac_bits": 6, "bits": 8},
                                      "r": {"frac_bits": 6, "bits": 8}}
    assert art.inputs.normalization["mv_bound"] == 20.0
    # the partitions are the trained ones
    for mod, branch in (("mv", model.stm_mv), ("r", model.stm_res)):
        back = load_stm(art.stm_path(mod))
        for (k, a), (_, b) in zip(branch.stm.state_dict().items(), back.state_dict().items()):
            assert torch.equal(a, b), k
        b = art.bridges[mod]
        assert b.layout == (2, *model.dense.cfg.in_shape(mod))
        assert b.v_scale == read_network(art.stm_path(mod)).layers[-1].v_scale
    dense = load_torch(art.torch_path)
    for (k, a), (_, b) in zip(model.dense.state_dict().items(), dense.state_dict().items()):
        assert torch.equal(a, b), k
    assert art.bridge_bytes_per_video == 2 * (2 * 5 * 12 * 12 * 3)
    # the mapping: the STM files as deployed, on the default chip, as `hybrid map` maps them
    assert art.mapping_path == art.path / "mapping.json" and art.nir_paths == {}
    stored = read_mapping(art.mapping_path)
    assert stored["chip"] == "loihi2" and stored["branches"] == {"mv": [2, SIZE, SIZE],
                                                                 "r": [3, SIZE, SIZE]}
    nets = {m: read_network(art.stm_path(m)) for m in ("mv", "r")}
    assert stored == json.loads(json.dumps(map_network(nets, CHIPS["loihi2"]).to_dict()))
    assert [m["neurons"] for m in stored["layers"][:3]] == [4 * 12 * 12, 6 * 12 * 12,
                                                            5 * 12 * 12]
    assert not [p for p in art.path.parent.iterdir() if p.name.startswith(".")]


def _copy(deployed, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(deployed.path, dst)
    return dst


def _break_missing(d):
    (d / "stm_r.h5").unlink()
    return "stm_r.h5", "missing"


def _break_truncated(d):
    p = d / "dense.onnx"
    p.write_bytes(p.read_bytes()[:-100])
    return "dense.onnx", "truncated"


def _break_altered(d):
    p = d / "stm_mv.h5"
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0xFF
    p.write_bytes(bytes(b))
    return "stm_mv.h5", "altered: sha256"


def _break_grown(d):
    p = d / "spec.json"
    p.write_text(p.read_text() + " ")
    return "spec.json", "altered: .* bytes"


def _break_version(d):
    p = d / "manifest.json"
    m = json.loads(p.read_text())
    m["version"] = 99
    p.write_text(json.dumps(m))
    return "manifest.json", "artifact version 99.*reads versions 1, 2"


def _break_format(d):
    p = d / "manifest.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), "format": "something-else"}))
    return "manifest.json", "not a hybrid deploy artifact"


def _break_no_manifest(d):  # what a half-written folder would look like
    (d / "manifest.json").unlink()
    return "manifest.json", "missing .*not a complete artifact"


def _break_bad_json(d):
    (d / "manifest.json").write_text('{"format": "hybrid-deploy", ')
    return "manifest.json", "not readable JSON"


def _break_escape(d):
    p = d / "manifest.json"
    m = json.loads(p.read_text())
    m["files"][0]["path"] = "../outside.h5"
    p.write_text(json.dumps(m))
    return "manifest.json", "leaves the artifact folder"


def _break_stm_version(d):
    """A re-hashed STM file of another version: caught by the partition's own check."""
    import h5py

    p = d / "stm_mv.h5"
    with h5py.File(p, "a") as f:
        f.attrs["version"] = 7
    m = json.loads((d / "manifest.json").read_text())
    for e in m["files"]:
        if e["path"] == "stm_mv.h5":
            e["bytes"], e["sha256"] = p.stat().st_size, A.sha256_file(p)
    (d / "manifest.json").write_text(json.dumps(m))
    return "stm_mv.h5", "version 7"


def _rehash(d, name):
    m = json.loads((d / "manifest.json").read_text())
    for e in m["files"]:
        if e["path"] == name:
            e["bytes"], e["sha256"] = (d / name).stat().st_size, A.sha256_file(d / name)
    (d / "manifest.json").write_text(json.dumps(m))


def _break_mapping(d):
    p = d / "mapping.json"
    p.write_text(p.read_text().replace('"fits": true', '"fits":false'))  # same size
    return "mapping.json", "altered: sha256"


def _break_mapping_version(d):
    """A re-hashed mapping.json of another format version: refused by its own reader."""
    p = d / "mapping.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), "version": 0}))
    _rehash(d, "mapping.json")
    return "mapping.json", "version 0"


def _break_mapping_branches(d):
    """A re-hashed mapping.json of STMs at another input size."""
    p = d / "mapping.json"
    mp = json.loads(p.read_text())
    mp["branches"]["mv"] = [2, 48, 48]
    p.write_text(json.dumps(mp))
    _rehash(d, "mapping.json")
    return "mapping.json", "maps branches"


def _break_duplicate_role(d):
    p = d / "manifest.json"
    m = json.loads(p.read_text())
    m["files"].append({**next(e for e in m["files"] if e["role"] == "mapping"),
                       "path": "spec.json", "bytes": (d / "spec.json").stat().st_size,
                       "sha256": A.sha256_file(d / "spec.json")})
    p.write_text(json.dumps(m))
    return "manifest.json", "role 'mapping' listed twice"


BREAKS = [_break_missing, _break_truncated, _break_altered, _break_grown, _break_version,
          _break_format, _break_no_manifest, _break_bad_json, _break_escape,
          _break_stm_version, _break_mapping, _break_mapping_version, _break_mapping_branches,
          _break_duplicate_role]


@pytest.mark.parametrize("brk", BREAKS, ids=[b.__name__[7:] for b in BREAKS])
def test_corrupt_artifact_gives_its_error(deployed, tmp_path, brk):
    d = _copy(deployed, tmp_path)
    name, pattern = brk(d)
    with pytest.raises(A.ArtifactError, match=pattern) as exc:
        A.load_artifact(d)
    msg = str(exc.value)
    assert name in msg and "\n" not in msg, msg
    res = CliRunner().invoke(main, ["run", str(d), str(tmp_path)])
    assert res.exit_code == 1 and name in res.output and "Traceback" not in res.output


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(A.ArtifactError, match="no such artifact folder"):
        A.load_artifact(tmp_path / "nope")


def test_write_is_atomic(trained, tmp_path, monkeypatch):
    from hybrid.ondevice.artifacts import deploy_checkpoint

    out = tmp_path / "art"

    def fail(*a, **k):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(A, "export_onnx", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        deploy_checkpoint(trained[1], out)
    assert not out.exists(), "a half-written artifact folder was left under its name"
    assert list(tmp_path.iterdir()) == [], "staging folder left behind"
    monkeypatch.undo()
    deploy_checkpoint(trained[1], out)
    with pytest.raises(FileExistsError, match="exists"):
        deploy_checkpoint(trained[1], out)
    before = (out / "manifest.json").read_text()
    art = deploy_checkpoint(trained[1], out, overwrite=True)
    assert A.load_artifact(out).classes == art.classes
    assert json.loads(before)["files"] == json.loads((out / "manifest.json").read_text())["files"]
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


def test_cli_deploy(trained, tmp_path):
    out = tmp_path / "a"
    res = CliRunner().invoke(main, ["deploy", str(trained[1]), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["format"] == "hybrid-deploy"
    res = CliRunner().invoke(main, ["deploy", str(trained[1]), "-o", str(out)])
    assert res.exit_code == 1 and "exists" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["deploy", str(tmp_path / "none.pt"), "-o", str(out / "b")])
    assert res.exit_code == 1 and "none.pt" in res.output


def test_cli_deploy_chip_and_nir(trained, deployed, tmp_path):
    """`--chip loihi --nir`: the mapping for that chip and one NIR graph per STM branch,
    each listed with its sha256 and checked on load; nir.read gives the STMs' weights."""
    nir = pytest.importorskip("nir")
    out = tmp_path / "a"
    res = CliRunner().invoke(main, ["deploy", str(trained[1]), "-o", str(out), "--chip",
                                    "loihi", "--nir"])
    assert res.exit_code == 0, res.output
    assert "mapping:" in res.output and "Loihi" in res.output and "NIR" in res.output
    art = A.load_artifact(out)
    files = {f["role"]: f for f in art.manifest["files"]}
    assert {"mapping", "nir:mv", "nir:r"} <= set(files)
    assert (files["nir:mv"]["path"], files["nir:r"]["path"]) == ("stm_mv.nir", "stm_r.nir")
    for role in ("mapping", "nir:mv", "nir:r"):
        p = out / files[role]["path"]
        assert files[role]["sha256"] == A.sha256_file(p)
        assert files[role]["bytes"] == p.stat().st_size
    assert read_mapping(art.mapping_path)["chip"] == "loihi"
    assert read_mapping(art.mapping_path) != read_mapping(deployed.mapping_path)
    assert set(art.nir_paths) == {"mv", "r"}
    for m, path in art.nir_paths.items():
        g = nir.read(path)
        assert g.metadata["branch"] == m
        net = read_network(art.stm_path(m))
        for k, spec in enumerate(net.layers, start=1):
            w = g.nodes[f"conv{k}"].weight
            assert np.array_equal(w.astype(np.float64), spec.weight * 2.0 ** spec.weight_exp)
            assert np.all(g.nodes[f"lif{k}"].v_threshold == spec.vth * 64 / spec.v_scale)
    # the NIR files are checked like every other listed file
    b = bytearray((out / "stm_r.nir").read_bytes())
    b[len(b) // 2] ^= 0xFF
    (out / "stm_r.nir").write_bytes(bytes(b))
    with pytest.raises(A.ArtifactError, match="stm_r.nir: altered: sha256"):
        A.load_artifact(out)


# ---- the runtime: Lava + onnxruntime against torch ---------------------------------


def _torch_qat_logits(checkpoint, dataset) -> np.ndarray:
    """The independent path: the training checkpoint's HybridModel, STMs in qat."""
    from deploy.artifact.inputs import decode_sample
    from hybrid.training.evaluate import load_model

    model, _, _ = load_model(checkpoint)
    out = []
    with torch.no_grad():
        for i in range(len(dataset)):
            s = decode_sample(dataset[i])  # the loader's uint8 codes -> the model's floats
            out.append(model(s["iframe"][None], s["mv"][None], s["residual"][None],
                             quant="qat")[0].numpy())
    return np.stack(out)


@pytest.fixture(scope="module")
def held_out_run(deployed, trained):
    from deploy.runtime.pool import run_videos
    from hybrid.ondevice.artifacts import open_input

    ds, names, labels = open_input(deployed, trained[0], video_size=VIDEO)
    rep = run_videos(deployed, ds, names, labels, compare=True)
    return ds, names, labels, rep


@pytest.mark.slow
def test_runtime_equals_torch_qat(held_out_run, trained):
    ds, names, labels, rep = held_out_run
    assert len(rep["videos"]) == len(names) == 3 and not rep["skipped"]
    assert rep["spikes_equal"] is True and rep["agreement"] == 1.0
    assert rep["max_logit_diff"] <= 1e-4
    for v in rep["videos"]:
        assert all(all(layers) for layers in v["compare"]["layers_spikes_equal"].values())
        assert all(s > 0 for m in ("mv", "r") for s in v["spikes"][m][:1]), v["spikes"]
        assert set(v["seconds"]) == {"extract", "spiking", "bridge", "dense"}
    lava = np.array([v["logits"] for v in rep["videos"]])
    ref = _torch_qat_logits(trained[1], ds)
    assert np.abs(lava - ref).max() <= 1e-4
    assert np.array_equal(lava.argmax(1), ref.argmax(1))
    assert rep["top1"] == np.mean(ref.argmax(1) == np.array(labels)) == rep["top1_torch_qat"]


@pytest.mark.slow
def test_runtime_with_two_workers_matches(held_out_run, deployed):
    import multiprocessing.util

    from deploy.runtime.pool import run_videos

    ds, names, labels, one = held_out_run
    ticks = []
    own = multiprocessing.util.get_temp_dir()
    two = run_videos(deployed, ds, names, labels, workers=2, compare=True,
                     progress=ticks.append)
    # the workers' temporary folders are removed, this process's is not (removing it
    # broke every later test of the suite that used multiprocessing or Lava)
    assert Path(own).is_dir()
    assert two["workers"] == 2 and len(ticks) == len(names)
    assert two["spikes_equal"] is True and two["agreement"] == 1.0
    assert two["max_logit_diff"] <= 1e-4
    for a, b in zip(one["videos"], two["videos"]):
        assert a["video"] == b["video"] and a["spikes"] == b["spikes"]
        assert np.abs(np.array(a["logits"]) - np.array(b["logits"])).max() <= 1e-6
    import multiprocessing

    assert multiprocessing.active_children() == []


def _h264_with_bframes(path: Path) -> Path:
    import av

    from hybrid.video.synth import SynthConfig, render_video

    frames = render_video(0, 5, SynthConfig(size=(64, 48), frames=26))
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        st.codec_context.options = {"bf": "2", "b-adapt": "0", "g": "30"}
        for t, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = t
            out.mux(st.encode(f))
        out.mux(st.encode(None))
    return path


@pytest.mark.slow
def test_cli_run_h264_with_bframes(deployed, tmp_path):
    from hybrid.video.probe import probe

    clip = _h264_with_bframes(tmp_path / "clip.mp4")
    assert "B" in probe(clip).types
    res = CliRunner().invoke(main, ["run", str(deployed.path), str(clip), "--json",
                                    "--compare", "--top", "2", "--video-size", "64x48"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    (v,) = rep["videos"]
    assert v["video"] == str(clip) and len(v["top"]) == 2 and "label" not in v
    assert v["top"][0]["probability"] >= v["top"][1]["probability"]
    assert {"agreement", "spikes_equal", "max_logit_diff"} <= set(rep) and "top1" not in rep
    assert rep["spikes_equal"] and rep["agreement"] == 1.0
    res = CliRunner().invoke(main, ["run", str(deployed.path), str(clip), "--video-size",
                                    "64x48"])
    assert res.exit_code == 0 and "clip.mp4" in res.output and "per video" in res.output


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_during_run_leaves_no_lava_process(deployed, trained, tmp_path, workers):
    import os
    import signal
    import subprocess
    import sys
    import time

    # a long input: the held-out videos listed many times
    data = tmp_path / "data"
    data.mkdir()
    for p in trained[0].iterdir():
        (data / p.name).symlink_to(p)
    (data / "testlist01.txt").unlink()
    lines = (trained[0] / "testlist01.txt").read_text().split()
    # long enough that the fused Lava layers (a few ms a sequence) are still running
    # when the signal comes, whatever the machine's load
    (data / "testlist01.txt").write_text("\n".join(lines * 400) + "\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "hybrid", "run", str(deployed.path),
                             str(data), "--workers", str(workers), "--video-size", "64x48"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            # SIGINT as a terminal gives it, even where this test run was
                            # started in the background (SIGINT ignored, then inherited)
                            preexec_fn=sigint_default)
    seen: set[int] = set()
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            seen |= descendants(proc.pid)
            if len(seen) >= 12 * workers:  # Lava's processes of both STMs are up
                break
            time.sleep(0.2)
        assert proc.poll() is None and len(seen) >= 12 * workers, (
            f"the run never started its Lava processes: {proc.stderr.read()[-2000:]}")
        time.sleep(2.0)  # mid-run
        seen |= descendants(proc.pid)
        assert proc.poll() is None, "the run ended before the test could interrupt it"
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.time() + 30
    while time.time() < deadline and any(alive(p) for p in seen):
        time.sleep(0.5)
    left = [p for p in seen if alive(p)]
    assert not left, f"processes left behind after Ctrl-C: {left}"
    assert proc.returncode != 0


# ---- quantisation cost: eval --quant, train --init -------------------------------


@pytest.mark.slow
def test_eval_quant_qat_is_the_fixed_point_model(trained, held_out_run):
    data, ck = trained
    ds, _, labels, _ = held_out_run
    ref = _torch_qat_logits(ck, ds).argmax(1)
    res = {}
    for q in ("float", "qat"):
        r = CliRunner().invoke(main, ["eval", str(ck), str(data), "--views", "2x1",
                                      "--video-size", "64x48", "--quant", q, "--json"])
        assert r.exit_code == 0, r.output
        res[q] = json.loads(r.stdout)
        assert res[q]["quant"] == q
    assert res["qat"]["top1"] == float(np.mean(ref == np.array(labels)))
    r = CliRunner().invoke(main, ["eval", str(ck), str(data), "--quant", "int4"])
    assert r.exit_code == 2


def test_train_init_fine_tunes_in_qat(trained, tmp_path):
    from hybrid.training import checkpoint

    data, ck = trained
    run = tmp_path / "qat"
    # --segments/--size left at their defaults: the model config comes from --init
    r = CliRunner().invoke(main, ["train", str(data), "-o", str(run), "--init", str(ck),
                                  "--quant", "qat", "--epochs", "1", "--batch-size", "3",
                                  "--video-size", "64x48"])
    assert r.exit_code == 0, r.output
    src, new = checkpoint.load(ck), checkpoint.load(run / "checkpoint.pt")
    assert new["model_config"] == {**src["model_config"], "quant": "qat"}
    assert new["epoch"] == 1
    moved = [k for k, v in new["model"].items()
             if v.is_floating_point() and not torch.equal(v, src["model"][k])]
    assert moved, "fine-tuning changed nothing"
    # started from the checkpoint, not from scratch: closer to it than a fresh model is
    from hybrid.model import HybridConfig, HybridModel

    fresh = HybridModel(HybridConfig.from_dict(src["model_config"])).state_dict()
    step = sum(float((new["model"][k] - src["model"][k]).abs().sum()) for k in moved)
    apart = sum(float((fresh[k] - src["model"][k]).abs().sum()) for k in moved)
    assert step < 0.5 * apart, (step, apart)
    r = CliRunner().invoke(main, ["train", str(data), "-o", str(run), "--init", str(ck),
                                  "--resume"])
    assert r.exit_code == 2 and "--init" in r.output


@pytest.mark.slow
def test_demo_ending_deploys_and_runs_one_video(trained, tmp_path):
    from hybrid.demo import deploy_and_run

    data, ck = trained
    video = next(data.glob("*/*.avi"))
    lines = []
    v = deploy_and_run(ck, tmp_path / "deploy", video, VIDEO, lines.append)
    assert v["compare"]["spikes_equal"] and v["compare"]["top1_agrees"]
    assert (tmp_path / "deploy" / "manifest.json").is_file()
    assert lines and lines[0].startswith("[5/5] deployed") and video.name in lines[0]


def test_an_artifact_builds_one_onnx_session_for_its_check_and_its_runs(deployed,
                                                                        monkeypatch):
    """``load_artifact`` builds the onnxruntime session to check dense.onnx; the runtime
    then uses that one (it built a second one for every run)."""
    built = []

    class Counting(A.OnnxDense):
        def __init__(self, *a, **kw):
            built.append(a[0])
            super().__init__(*a, **kw)

    monkeypatch.setattr(A, "OnnxDense", Counting)
    art = A.load_artifact(deployed.path)
    assert len(built) == 1
    assert art.dense_onnx() is art.dense_onnx() and len(built) == 1
    assert len(A.load_artifact(deployed.path).dense_onnx().session.get_inputs()) >= 1
    assert len(built) == 2  # a second load checks its own bytes
    import pickle  # to `run --workers`' spawned workers: without the session

    again = pickle.loads(pickle.dumps(art))
    assert again.blobs == art.blobs and again._onnx is None
