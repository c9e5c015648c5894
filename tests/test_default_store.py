"""The video cache is `hybrid prepare`'s default store: what reads a store (train, eval,
the demo, the examples' default data) reads it as it reads the dataset folder."""
import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.data.sources import detect_layout, load_split
from hybrid.video.synth import SynthConfig, make_dataset

VIDEO = (64, 48)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """2 classes x 4 videos (3 train + 1 test each), 64x48, 2 GOPs."""
    out = tmp_path_factory.mktemp("synth")
    make_dataset(out, classes=2, per_class=4, seed=0, cfg=SynthConfig(size=VIDEO, frames=24))
    return out


def test_train_and_eval_read_the_default_store_as_the_folder(data, tmp_path):
    """`prepare DATA -o DIR` (no --store) writes a video cache; a model trained on it
    records the prepare size, and its evaluation on the store equals the one on the
    dataset folder read at that size."""
    vc = tmp_path / "vc"
    res = CliRunner().invoke(main, ["prepare", str(data), "-o", str(vc), "--size", "64x48",
                                    "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert detect_layout(vc) == "videocache" and "1.00x the source videos'" in res.output
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", str(vc), "-o", str(run), "--epochs", "1",
                                    "--size", "32", "--segments", "1"])
    assert res.exit_code == 0, res.output
    ck = run / "checkpoint.pt"
    from hybrid.training import checkpoint

    assert checkpoint.load(ck)["video_size"] == list(VIDEO)
    evals = []
    for source in (vc, data):
        res = CliRunner().invoke(main, ["eval", str(ck), str(source), "--views", "1x1",
                                        "--video-size", "64x48", "--json"])
        assert res.exit_code == 0, res.output
        evals.append(json.loads(res.stdout))
    assert evals[0]["videos"] == evals[1]["videos"] == 2 and not evals[0]["skipped"]
    for k in ("top1", "top5", "confusion"):
        assert evals[0][k] == evals[1][k], k


def test_the_demo_prepares_the_default_store_the_examples_read(tmp_path):
    """`hybrid demo` (make_data) prepares the video cache, at the examples' default
    --data path, listing the folder's splits; a re-run finds it done."""
    from hybrid.demo import DemoConfig, datasets, make_data

    spec = importlib.util.spec_from_file_location(
        "examples_common", Path(__file__).resolve().parents[1] / "examples" / "_common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    cfg = DemoConfig(classes=2, per_class=2, video_size=VIDEO, frames=24)
    lines = []
    out = tmp_path / "demo-out"
    folder, store = make_data(out, cfg, lines.append)
    assert store == tmp_path / common.DEFAULT_DATA and detect_layout(store) == "videocache"
    assert "1.00x the videos' bytes" in lines[-1]
    for split in ("train", "test"):
        assert load_split(store, split) == load_split(folder, split)
    (train_ds, val_ds), classes = datasets(store, 1, 32, video_size=VIDEO)
    assert len(train_ds) + len(val_ds) == 4 and len(classes) == 2
    assert train_ds.videos is not None  # read from the video cache, not the folder
    make_data(out, cfg, lines.append)
    assert "(4 already there;" in lines[-1]
