"""Issue 24: artifacts and data you can trust. Each case of the issue is a test here:
``deploy --force`` replaces only an earlier artifact; every file the runtime opens is one
the manifest lists and verifies, read once; nothing read outside its folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.artifact import folder as A
from hybrid.cli import main


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ---- 1. deploy --force replaces only an earlier artifact ------------------------------


def test_deploy_force_replaces_only_an_earlier_artifact(trained, deployed, tmp_path,
                                                       monkeypatch):
    data, ckpt = trained
    run = tmp_path / "run"
    shutil.copytree(ckpt.parent, run)
    ds = tmp_path / "ds"
    shutil.copytree(data, ds)
    extra = tmp_path / "extra"  # an artifact with a file of the user's beside it
    shutil.copytree(deployed.path, extra)
    (extra / "notes.txt").write_text("mine")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "keep.txt").write_text("mine")
    for out, why in ((run, "not a `hybrid deploy` artifact"),
                     (ds, "not a `hybrid deploy` artifact"),
                     (extra, "notes.txt")):
        before = _tree(out)
        res = CliRunner().invoke(main, ["deploy", str(run / "checkpoint.pt"), "-o", str(out),
                                        "--force"])
        assert res.exit_code == 1 and why in res.output, res.output
        assert str(out) in res.output and "Traceback" not in res.output
        assert _tree(out) == before, f"{out} was changed"
    monkeypatch.chdir(cwd)
    res = CliRunner().invoke(main, ["deploy", str(run / "checkpoint.pt"), "-o", ".", "--force"])
    assert res.exit_code == 1 and "not a `hybrid deploy` artifact" in res.output, res.output
    assert _tree(cwd) == {"keep.txt": b"mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "ds", "extra", "run"]
    # an earlier artifact is replaced, also one given as "."
    art = tmp_path / "art"
    shutil.copytree(deployed.path, art)
    res = CliRunner().invoke(main, ["deploy", str(run / "checkpoint.pt"), "-o", str(art),
                                    "--force"])
    assert res.exit_code == 0, res.output
    monkeypatch.chdir(art)
    res = CliRunner().invoke(main, ["deploy", str(run / "checkpoint.pt"), "-o", ".", "--force"])
    assert res.exit_code == 0, res.output
    assert A.load_artifact(art).classes == deployed.classes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---- a random tiny model deployed twice (seeds 0 and 7): cheap, no training -----------

SIZE, VIDEO = 24, (64, 48)


def _write(root: Path, seed: int, classes: list[str]):
    import torch

    from hybrid.model import HybridConfig, HybridModel
    from hybrid.ondevice.artifacts import BRANCHES, input_spec

    torch.manual_seed(seed)
    cfg = HybridConfig(num_classes=len(classes), segments=2, size=(SIZE, SIZE),
                       stm={"weight_scale": 10.0, "widths": (4, 6, 5)})
    model = HybridModel(cfg).eval()
    spec = input_spec(model)
    stms = {m: getattr(model, BRANCHES[m]).stm for m in spec.stm_modalities}
    return A.write_artifact(root, stms, model.dense, spec, classes,
                            model_config=cfg.to_dict())


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """(art, art2, data): two random models of one shape deployed, and a synthetic set."""
    from hybrid.data.sources import load_split
    from hybrid.video.synth import SynthConfig, make_dataset

    root = tmp_path_factory.mktemp("trust")
    data = root / "data"
    make_dataset(data, classes=2, per_class=2, seed=2, cfg=SynthConfig(size=VIDEO, frames=24))
    classes = load_split(data, "test")[1]
    return _write(root / "art", 0, classes), _write(root / "art2", 7, classes), data


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def _resign(d: Path, m: dict | None = None) -> None:
    """Re-list every file of the manifest with its current size and sha256 (a re-signed
    artifact: what an attacker who can write the folder can do)."""
    m = m or _manifest(d)
    for e in m["files"]:
        p = d / e["path"]
        e["bytes"], e["sha256"] = p.stat().st_size, A.sha256_file(p)
    (d / "manifest.json").write_text(json.dumps(m))


def _onnx_logits(dense, n_seed: int = 3):
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(n_seed)
    cfg = dense.cfg
    xs = {m: torch.randn(1, cfg.segments, *cfg.in_shape(m), generator=g)
          for m in cfg.modalities}
    return np.asarray(dense(xs.get("i"), xs.get("mv"), xs.get("r")))


# ---- 2. integrity: every file opened is listed and verified, by its listed path --------


def test_an_unlisted_file_in_an_artifact_is_refused(two, tmp_path):
    """`dense-onnx` listed as a verified `verified.onnx`, another model's `dense.onnx`
    dropped beside it unlisted: refused, naming the file (it ran the unlisted model)."""
    art, art2, _ = two
    d = _copy(art.path, tmp_path / "a")
    (d / "dense.onnx").rename(d / "verified.onnx")
    m = _manifest(d)
    next(e for e in m["files"] if e["role"] == "dense-onnx")["path"] = "verified.onnx"
    _resign(d, m)
    assert A.load_artifact(d).onnx_path == d / "verified.onnx"
    shutil.copy(art2.path / "dense.onnx", d / "dense.onnx")
    with pytest.raises(A.ArtifactError, match=r"dense.onnx: not listed in manifest.json"):
        A.load_artifact(d)
    res = CliRunner().invoke(main, ["run", str(d), str(two[2])])
    assert res.exit_code == 1 and "dense.onnx: not listed" in res.output, res.output


def test_the_runtime_loads_the_listed_paths(two, tmp_path):
    """Every partition is loaded from the file its role lists, not from a fixed name."""
    from deploy.runtime.engine import TorchReference

    art, _, _ = two
    d = _copy(art.path, tmp_path / "a")
    m = _manifest(d)
    for e in m["files"]:
        if e["role"] != "spec":
            (d / e["path"]).rename(d / f"v_{e['path']}")
            e["path"] = f"v_{e['path']}"
    _resign(d, m)
    a = A.load_artifact(d)
    assert not (d / "dense.onnx").exists() and not (d / "stm_mv.h5").exists()
    assert (a.onnx_path, a.stm_path("mv")) == (d / "v_dense.onnx", d / "v_stm_mv.h5")
    ref = TorchReference(a)
    assert set(ref.stms) == {"mv", "r"}
    assert _onnx_logits(a.dense_onnx()).shape == (1, len(art.classes))


def test_onnx_external_data_is_refused(two, tmp_path):
    """An ONNX dense partition keeping its weights in an external data file: refused
    (onnxruntime would read that file unchecked), listed or not."""
    import onnx

    from ann.onnx_export import OnnxDense

    art, _, _ = two
    d = _copy(art.path, tmp_path / "a")
    proto = onnx.load(str(d / "dense.onnx"))
    onnx.save_model(proto, str(d / "dense.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    with pytest.raises(ValueError, match=r"dense.onnx: keeps tensors in external data "
                                         r"\['weights.bin'\]"):
        OnnxDense(d / "dense.onnx")
    _resign(d)
    with pytest.raises(A.ArtifactError, match="weights.bin: not listed"):
        A.load_artifact(d)
    m = _manifest(d)
    m["files"].append({"path": "weights.bin", "role": "nir:mv", "bytes": 0,
                       "sha256": "0" * 64})
    _resign(d, m)
    with pytest.raises(A.ArtifactError, match="dense.onnx: keeps tensors in external data"):
        A.load_artifact(d)


# ---- 3. verify and load the same bytes ------------------------------------------------


def test_a_run_loads_the_bytes_it_verified(two, tmp_path):
    """The folder is re-deployed with another model between verification and loading:
    the runtime (Lava networks, onnxruntime, torch reference) runs the verified model,
    never a mix (it re-opened the files by path)."""
    import numpy as np

    from ann.onnx_export import OnnxDense
    from deploy.runtime.engine import HybridRuntime, TorchReference
    from neuro.export import read_network

    art, art2, _ = two
    d = _copy(art.path, tmp_path / "a")
    loaded = A.load_artifact(d)
    shutil.rmtree(d)
    _copy(art2.path, d)  # what `deploy run2 -o A --force` leaves
    want = _onnx_logits(OnnxDense(art.path / "dense.onnx"))
    assert not np.array_equal(want, _onnx_logits(OnnxDense(d / "dense.onnx")))
    with HybridRuntime(loaded) as rt:
        assert np.array_equal(_onnx_logits(rt.dense), want)
        for m, runner in rt.runners.items():
            ours = read_network(art.path / f"stm_{m}.h5").layers[0].weight
            assert np.array_equal(runner.net.layers[0].weight, ours)
    ref = TorchReference(loaded)
    theirs = read_network(d / "stm_mv.h5").layers[0].weight
    assert not np.array_equal(ref.stms["mv"].blocks[0].synapse.weight.detach().numpy(),
                              theirs)
    import torch

    for (k, a), (_, b) in zip(ref.dense.state_dict().items(),
                              A.load_artifact(art.path).dense_torch().state_dict().items()):
        assert torch.equal(a, b), k


# ---- 4. symlinks, and map / nir on other manifests -----------------------------------


def test_symlinks_in_an_artifact_are_refused(two, tmp_path):
    art, _, _ = two
    outside = tmp_path / "outside"
    outside.mkdir()
    d = _copy(art.path, tmp_path / "a")
    (d / "spec.json").rename(outside / "spec.json")
    (d / "spec.json").symlink_to(outside / "spec.json")  # same bytes: the hash matches
    with pytest.raises(A.ArtifactError, match="spec.json: spec.json is a symbolic link"):
        A.load_artifact(d)
    d2 = _copy(art.path, tmp_path / "b")  # a listed path through a symlinked subfolder
    (d2 / "stm_r.h5").rename(outside / "stm_r.h5")
    (d2 / "sub").symlink_to(outside)
    m = _manifest(d2)
    next(e for e in m["files"] if e["role"] == "stm:r")["path"] = "sub/stm_r.h5"
    (d2 / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(A.ArtifactError, match="'sub/stm_r.h5' is not a file name of its"):
        A.load_artifact(d2)
    for f in (d, d2):
        for cmd in (["map", str(f)], ["nir", str(f), "-o", str(tmp_path / "n")]):
            res = CliRunner().invoke(main, cmd)
            assert res.exit_code == 1 and str(f) in res.output, res.output
            assert "Traceback" not in res.output


@pytest.mark.parametrize("where", ["dotdot", "absolute", "link"])
def test_map_and_nir_on_another_manifest_stay_in_the_folder(two, tmp_path, where):
    """A folder whose manifest.json is not a deploy manifest: its listed .h5 files must
    lie inside the folder, reached without a link (map and nir read them)."""
    art, _, _ = two
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = shutil.copy(art.path / "stm_mv.h5", outside / "secret.h5")
    d = tmp_path / "m"
    d.mkdir()
    rel = {"dotdot": "../outside/secret.h5", "absolute": str(secret),
           "link": "sub/secret.h5"}[where]
    if where == "link":
        (d / "sub").symlink_to(outside)
    entry = {"path": rel, "role": "stm:mv", "bytes": Path(secret).stat().st_size,
             "sha256": A.sha256_file(secret)}
    (d / "manifest.json").write_text(json.dumps({"files": [entry]}))
    why = "is a symbolic link" if where == "link" else "leaves the artifact folder"
    for cmd in (["map", str(d)], ["nir", str(d), "-o", str(tmp_path / "n")]):
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 1 and why in res.output, res.output
        assert "Traceback" not in res.output
    assert not (tmp_path / "n").exists()


# ---- every command reads only the verified files of the artifact ---------------------


class _Opens:
    """Every file this process opens (its real path, read back from the descriptor, so a
    link is seen where it leads) and every path handed to a loader (h5py, onnxruntime,
    torch.load), which would read it outside Python's ``open``."""

    def __init__(self, monkeypatch):
        import builtins
        import io
        import os

        import h5py
        import onnxruntime
        import torch

        self.files: list[Path] = []
        self.loaders: list[tuple[str, Path]] = []
        real_os_open, real_open = os.open, builtins.open

        def where(fd: int) -> None:
            try:
                self.files.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
            except OSError:
                pass

        def os_open(path, flags, mode=0o777, *, dir_fd=None):
            fd = real_os_open(path, flags, mode, dir_fd=dir_fd)
            where(fd)
            return fd

        def py_open(file, *a, **k):
            f = real_open(file, *a, **k)
            where(f.fileno())
            return f

        def loader(name, real):
            def call(src, *a, **k):
                if isinstance(src, (str, os.PathLike)):
                    self.loaders.append((name, Path(src).resolve()))
                return real(src, *a, **k)
            return call

        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(builtins, "open", py_open)
        monkeypatch.setattr(io, "open", py_open)
        monkeypatch.setattr(h5py, "File", loader("h5py.File", h5py.File))
        monkeypatch.setattr(onnxruntime, "InferenceSession",
                            loader("InferenceSession", onnxruntime.InferenceSession))
        monkeypatch.setattr(torch, "load", loader("torch.load", torch.load))


@pytest.mark.slow
def test_commands_open_only_the_files_the_manifest_verifies(two, tmp_path, monkeypatch):
    """run (with --compare), profile, chip, map and nir on an artifact whose files have
    other names than the writer's: every file they open under the test's folder is the
    manifest or a file it lists (or the input video, or an output), each artifact file is
    read by the manifest reader only (no loader gets an artifact path: they parse the
    verified bytes), and nothing beside the artifact is opened."""
    pytest.importorskip("nir")
    art, art2, data = two
    d = _copy(art.path, tmp_path / "a")
    m = _manifest(d)
    for e in m["files"]:
        (d / e["path"]).rename(d / f"v_{e['path']}")
        e["path"] = f"v_{e['path']}"
    _resign(d, m)
    beside = _copy(art2.path, tmp_path / "beside")  # another model next to it: never read
    video = sorted(data.rglob("*.avi"))[0]
    listed = {d / "manifest.json"} | {d / e["path"] for e in m["files"]}
    folders = {d, data, tmp_path}  # opened to list them
    out = tmp_path / "out"
    commands = [["run", d, video, "--compare", "--video-size", "64x48"],
                ["profile", d, data, "--videos", "1", "--video-size", "64x48"],
                ["chip", d, video, "--video-size", "64x48", "--sequences", "1"],
                ["map", d], ["nir", d, "-o", out / "nir"]]
    for cmd in commands:
        rec = _Opens(monkeypatch)
        res = CliRunner().invoke(main, [str(c) for c in cmd])
        monkeypatch.undo()
        assert res.exit_code == 0, (cmd[0], res.output)
        mine = [p for p in rec.files if tmp_path in p.parents]
        stray = [p for p in mine if p not in listed | folders and data not in p.parents
                 and out not in p.parents]
        assert not stray, (cmd[0], stray)
        assert listed <= set(mine), (cmd[0], listed - set(mine))
        assert not [p for p in mine if beside in p.parents], cmd[0]
        assert not [(n, p) for n, p in rec.loaders if d in p.parents], (cmd[0], rec.loaders)


# ---- 5, 6. a video cache's entries: inside its folder, labels that are classes ---------


def _videocache(d: Path, entries, classes=("a", "b")) -> Path:
    from hybrid.data.videocache import HEADER, VERSION
    from hybrid.video.extract import FORMAT

    d.mkdir()
    (d / "videos").mkdir()
    splits = {"train1": [["a/x.avi", 0], ["b/y.avi", 1]], "test1": entries}
    (d / HEADER).write_text(json.dumps({
        "format": FORMAT, "version": VERSION, "kind": "video-cache", "size": [64, 48],
        "root": str(d), "layout": "folder", "classes": list(classes), "splits": splits}))
    return d


@pytest.mark.parametrize("entry, why", [
    (["../../../outside/secret.avi", 0], "points outside"),
    (["/abs/secret.avi", 0], "points outside"),
    (["a/x.avi", -1], "label -1 is not a class index 0..1"),
    (["a/x.avi", 99], "label 99 is not a class index 0..1"),
    (["a/x.avi", "1"], "label '1' is not a class index 0..1"),
    ([3, 0], "entry 3 is not a path"),
])
def test_a_crafted_video_cache_is_refused(two, tmp_path, entry, why):
    """Entries outside the dataset (`run` and `eval` opened them) and labels that are not
    classes (-1 was counted as the last class): refused on read, naming the cache."""
    from hybrid.data.sources import load_split
    from hybrid.data.splits import SplitError

    art = two[0]
    d = _videocache(tmp_path / "vc", [["a/x.avi", 0], entry], art.classes)
    with pytest.raises(SplitError, match=why) as exc:
        load_split(d, "test")
    assert str(d) in str(exc.value) and "\n" not in str(exc.value)
    res = CliRunner().invoke(main, ["run", str(art.path), str(d)])
    assert res.exit_code == 1 and why in res.output and "Traceback" not in res.output


def test_a_video_cache_reads_no_link_out_of_its_folder(tmp_path):
    """A video of the cache that is a link to a file outside it: not read (reported as a
    video the cache does not hold)."""
    from hybrid.data.videocache import NotInVideoCacheError, VideoCacheReader

    d = _videocache(tmp_path / "vc", [["a/x.avi", 0]])
    (tmp_path / "secret.avi").write_bytes(b"secret")
    (d / "videos" / "a").mkdir()
    (d / "videos" / "a" / "x.avi").symlink_to(tmp_path / "secret.avi")
    (d / "videos" / "a" / "x.avi.json").write_text(json.dumps({"gops": [0]}))
    with pytest.raises(NotInVideoCacheError, match="outside the video cache"):
        VideoCacheReader(d).entry("a/x.avi")
    with pytest.raises(NotInVideoCacheError, match="outside the video cache"):
        VideoCacheReader(d).entry("../../secret.avi")


# ---- 6, 7. every stored spec and manifest field checked on read ----------------------


def _spec_edit(path, edit):
    def apply(d: Path) -> None:
        spec = json.loads((d / "spec.json").read_text())
        node = spec
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = edit(node[path[-1]])
        (d / "spec.json").write_text(json.dumps(spec))
        _resign(d)
    return apply


def _truncate(name, keep):
    def apply(d: Path) -> None:
        p = d / name
        p.write_bytes(p.read_bytes()[:keep] if keep else b"garbage" * 100)
        _resign(d)
    return apply


def _manifest_path_int(d: Path) -> None:
    m = _manifest(d)
    m["files"][0]["path"] = 3
    (d / "manifest.json").write_text(json.dumps(m))


BAD_FIELDS = {
    "segments_huge": (_spec_edit(("inputs", "segments"), lambda v: 10 ** 9), "segments"),
    "segments_fraction": (_spec_edit(("inputs", "segments"), lambda v: 3.5), "segments 3.5"),
    "segments_other": (_spec_edit(("inputs", "segments"), lambda v: 3), "segments"),
    "timesteps_huge": (_spec_edit(("inputs", "timesteps"), lambda v: 10 ** 9), "timesteps"),
    "classes_short": (_spec_edit(("classes",), lambda v: v[:-1]), "classes lists 1 names"),
    "classes_empty": (_spec_edit(("classes",), lambda v: []), "classes"),
    "classes_dict": (_spec_edit(("classes",), lambda v: {c: 1 for c in v}), "classes"),
    "mean_short": (_spec_edit(("inputs", "normalization", "mean"), lambda v: v[:1]),
                   "normalization mean"),
    "mean_nan": (_spec_edit(("inputs", "normalization", "mean"),
                            lambda v: [float("nan")] * 3), "normalization mean"),
    "std_zero": (_spec_edit(("inputs", "normalization", "std"), lambda v: [0, 0.2, 0.2]),
                 "normalization std"),
    "mv_bound_zero": (_spec_edit(("inputs", "normalization", "mv_bound"), lambda v: 0),
                      "normalization mv_bound"),
    "fixed_point": (_spec_edit(("inputs", "fixed_point", "mv", "bits"), lambda v: 7),
                    "fixed_point.mv"),
    "bridge_segments": (_spec_edit(("bridges", "mv", "segments"), lambda v: 3),
                        "bridge mv segments 3"),
    "bridge_v_scale": (_spec_edit(("bridges", "r", "v_scale"), lambda v: float("inf")),
                       "bridge r v_scale"),
    "manifest_path_int": (_manifest_path_int, "file path 3 is not a path"),
    "onnx_truncated": (_truncate("dense.onnx", 2000), "dense.onnx: "),
    "onnx_garbage": (_truncate("dense.onnx", 0), "dense.onnx: not a readable ONNX"),
    "torch_truncated": (_truncate("dense.pt", 2000), "dense.pt: not a readable torch"),
}


@pytest.mark.parametrize("case", BAD_FIELDS)
def test_a_bad_stored_field_is_one_line_naming_file_and_field(two, tmp_path, case):
    """Each stored value that crashed, hung or gave a silent wrong answer (`move_up nan`)
    in a re-signed artifact: refused on load, one line naming the file and the field."""
    art, _, data = two
    d = _copy(art.path, tmp_path / "a")
    brk, why = BAD_FIELDS[case]
    brk(d)
    with pytest.raises(A.ArtifactError, match=why) as exc:
        A.load_artifact(d)
    msg = str(exc.value)
    assert str(d) in msg and "\n" not in msg, msg
    res = CliRunner().invoke(main, ["run", str(d), str(data)])
    assert res.exit_code == 1 and why in res.output and "Traceback" not in res.output


def test_timesteps_the_reader_cannot_give_are_refused(two, tmp_path):
    """A spec's timesteps other than the reader's P-frames a GOP (and the model's)."""
    art, _, data = two
    d = _copy(art.path, tmp_path / "a")
    spec = json.loads((d / "spec.json").read_text())
    spec["inputs"]["timesteps"] = 5
    spec["model_config"].pop("timesteps")
    (d / "spec.json").write_text(json.dumps(spec))
    _resign(d)
    res = CliRunner().invoke(main, ["run", str(d), str(data)])
    assert res.exit_code == 1 and "inputs.timesteps 5, the video reader gives 11" in res.output
