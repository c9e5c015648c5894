"""Out-of-range numbers (issue 27, item 7) are refused at once with the bound named:
train --size 100000 asked torch for 480 GB, map --size 100000x100000 ran 55 s then
asked for 18.6 GiB, explain --segments 300 ran 150 s at 1.6 GB, --lr 1e300 overflowed."""
import pytest
from click.testing import CliRunner
from proctools import synth_set

from hybrid.cli import main


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return synth_set(tmp_path_factory, "bounds", classes=2, per_class=2, frames=12)


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_size_beyond_the_frames_is_refused(ds, tmp_path):
    res = _invoke("train", ds, "-o", tmp_path / "run", "--size", "100000", "--epochs", "1")
    assert res.exit_code == 1, res.output
    assert "crop size 100000: at most 128" in res.output and "64x48" in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_learning_rate_is_bounded(ds, tmp_path, command):
    res = _invoke(command, ds, "-o", tmp_path / "run", "--lr", "1e300")
    assert res.exit_code == 2 and "0<x<=10" in res.output, res.output


def test_map_size_beyond_128_chips_is_refused(tmp_path):
    import neuro  # noqa: F401
    from neuro.export import export_stm
    from neuro.stm import STM, STMConfig

    path = export_stm(STM(STMConfig()), tmp_path / "stm.h5", (56, 56))
    res = _invoke("map", path, "--size", "100000x100000")
    assert res.exit_code == 1, res.output
    assert "--size 100000x100000" in res.output and "more than 128" in res.output
    res = _invoke("map", path, "--size", "512")  # maps (too big for one chip: exit 1)
    assert "Error" not in res.output and "cores needed" in res.output, res.output


@pytest.mark.slow
def test_explain_segments_beyond_the_videos_gops_are_refused(trained, tmp_path):
    data, ckpt = trained
    video = sorted(data.rglob("*.avi"))[0]  # 24 frames: 2 GOPs; the model has 2 segments
    res = _invoke("explain", ckpt, video, "-o", tmp_path / "ex", "--segments", "300")
    assert res.exit_code == 1, res.output
    assert "--segments 300: the video has 2 GOPs; at most 8 segments" in res.output
    assert not (tmp_path / "ex").exists()
