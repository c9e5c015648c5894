"""An artifact reads videos at the size its model was trained at: `hybrid deploy` records
the checkpoint's ``video_size`` in the input spec, and `hybrid run` (as `chip` and
`profile`, through the same ``reading_size``) reads at it unless --video-size is given;
an artifact without the record (version 1) reads at 340x256 with one warning line."""
import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from deploy.artifact import folder as A
from hybrid.cli import main
from hybrid.training.checkpoint import save_atomic

TRAINED_AT = (96, 64)  # (W, H) the checkpoint below says its videos were read at


@pytest.fixture(scope="module")
def at_96x64(trained, tmp_path_factory):
    """The session's tiny model, its checkpoint recording 96x64 training videos, deployed;
    and one of its data set's videos (64x48, so every size is a resize)."""
    from hybrid.ondevice.artifacts import deploy_checkpoint

    root = tmp_path_factory.mktemp("vsize")
    ckpt = torch.load(trained[1], map_location="cpu", weights_only=True)
    ckpt["video_size"] = list(TRAINED_AT)
    save_atomic(ckpt, root / "checkpoint.pt")
    art = deploy_checkpoint(root / "checkpoint.pt", root / "model")
    video = sorted(trained[0].glob("*/*.avi"))[0]
    return art, video


def _spikes(art_path, video, *extra):
    res = CliRunner().invoke(main, ["run", str(art_path), str(video), "--json", *extra])
    assert res.exit_code == 0, res.output
    (v,) = json.loads(res.stdout)["videos"]
    return v["spikes"], res.stderr


@pytest.mark.slow
def test_run_reads_at_the_size_the_model_was_trained_at(at_96x64):
    art, video = at_96x64
    assert art.inputs.video_size == TRAINED_AT
    assert A.load_artifact(art.path).manifest["version"] == A.VERSION == 2
    default, err = _spikes(art.path, video)
    assert "warning" not in err
    assert default == _spikes(art.path, video, "--video-size", "96x64")[0]
    # the size changes the spikes: the default is not just any size
    assert default != _spikes(art.path, video, "--video-size", "340x256")[0]


@pytest.mark.slow
def test_an_artifact_without_the_size_warns_once_and_reads_at_340x256(at_96x64, tmp_path):
    art, video = at_96x64
    old = tmp_path / "old"
    shutil.copytree(art.path, old)
    spec = json.loads((old / "spec.json").read_text())
    del spec["inputs"]["video_size"]  # as version 1 wrote it
    (old / "spec.json").write_text(json.dumps(spec, indent=2))
    m = json.loads((old / "manifest.json").read_text())
    m["version"] = 1
    for e in m["files"]:
        if e["path"] == "spec.json":
            e["bytes"], e["sha256"] = (old / "spec.json").stat().st_size, A.sha256_file(
                old / "spec.json")
    (old / "manifest.json").write_text(json.dumps(m))
    assert A.load_artifact(old).inputs.video_size is None
    default, err = _spikes(old, video)
    lines = [line for line in err.splitlines() if "warning" in line]
    assert len(lines) == 1 and "340x256" in lines[0] and str(old) in lines[0], err
    assert default == _spikes(old, video, "--video-size", "340x256")[0]


def test_a_newer_artifact_version_is_refused_naming_both(at_96x64, tmp_path):
    art, _ = at_96x64
    new = tmp_path / "new"
    shutil.copytree(art.path, new)
    m = json.loads((new / "manifest.json").read_text())
    m["version"] = 3
    (new / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(A.ArtifactError, match="artifact version 3.*reads versions 1, 2"):
        A.load_artifact(new)
