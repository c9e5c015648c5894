"""`hybrid train DATA` reads a folder of videos at their own size by default (issue 28:
a 128x96 set had been upscaled to 340x256 and transcoded, and the 56 px crop saw a sixth
of it); eval defaults to the size the checkpoint was trained at."""
import numpy as np
import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.data.native import native_size
from hybrid.training import checkpoint

VIDEO = (64, 48)


def _size_spy(real):
    """(the video sizes ``open_split`` was called with, a wrapper recording them)."""
    seen = []

    def spy(*a, **kw):
        seen.append(tuple(kw["video_size"]))
        return real(*a, **kw)

    return seen, spy


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from hybrid.video.synth import SynthConfig, make_dataset

    out = tmp_path_factory.mktemp("small")
    make_dataset(out, classes=3, per_class=4, seed=5, cfg=SynthConfig(size=VIDEO, frames=12))
    return out


def test_a_folder_of_small_videos_is_not_upscaled_by_default(small, tmp_path, monkeypatch):
    import hybrid.data.dataset as dataset

    seen, spy = _size_spy(dataset.open_split)

    import hybrid.training.evaluate as evaluate

    monkeypatch.setattr(dataset, "open_split", spy)
    monkeypatch.setattr(evaluate, "open_split", spy)  # eval's (imported by name there)
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", str(small), "-o", str(run), "--epochs", "1",
                                  "--segments", "1", "--size", "32", "--batch-size", "4",
                                  "--workers", "0"])
    assert r.exit_code == 0, r.output
    assert "videos read at 64x48, the videos' own size" in r.stderr
    assert seen == [VIDEO, VIDEO]  # train and held-out, neither at 340x256
    ck = run / "checkpoint.pt"
    assert checkpoint.load(ck)["video_size"] == list(VIDEO)
    seen.clear()
    r = CliRunner().invoke(main, ["eval", str(ck), str(small), "--views", "1x1", "--json",
                                  "--plot", str(tmp_path / "c.png")])
    assert r.exit_code == 0, r.output
    assert seen == [VIDEO]  # eval reads at the checkpoint's training size
    # given, --video-size still wins
    seen.clear()
    r = CliRunner().invoke(main, ["train", str(small), "-o", str(tmp_path / "run2"),
                                  "--epochs", "1", "--segments", "1", "--size", "32",
                                  "--batch-size", "4", "--workers", "0",
                                  "--video-size", "96x64"])
    assert r.exit_code == 0, r.output
    assert seen == [(96, 64), (96, 64)] and "videos read at" not in r.stderr


def test_native_size_of_mixed_and_unreadable_videos(tmp_path):
    from hybrid.video.transcode import EncodeConfig, encode_mpeg4

    rng = np.random.default_rng(0)
    items = []
    for i, (w, h) in enumerate([(64, 48), (96, 64), (64, 48)]):
        frames = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(12)]
        encode_mpeg4(frames, tmp_path / f"v{i}.avi", EncodeConfig(size=(w, h)))
        items.append((f"v{i}.avi", 0))
    (tmp_path / "bad.avi").write_bytes(b"not a video at all")
    found = native_size(tmp_path, items + [("bad.avi", 0)])
    assert found.size == (64, 48) and found.probed == 3
    assert found.sizes == {"64x48": 2, "96x64": 1}
    assert "most common" in found.describe() and "96x64 x1" in found.describe()
    assert native_size(tmp_path, [("bad.avi", 0)]).size is None


def test_pretrain_reads_a_small_folder_at_its_own_size_and_records_it(small, tmp_path,
                                                                      monkeypatch):
    """`pretrain` defaults as `train` does (it had read every folder at 340x256), and its
    checkpoint records the size so a `--resume` reads alike."""
    import hybrid.data.dataset as dataset

    seen, spy = _size_spy(dataset.open_split)

    monkeypatch.setattr(dataset, "open_split", spy)
    run = tmp_path / "pre"
    args = ["pretrain", str(small), "-o", str(run), "--size", "32", "--segments", "2",
            "--levels", "2x2,4x1", "--batch-size", "4"]
    r = CliRunner().invoke(main, [*args, "--epochs", "1"])
    assert r.exit_code == 0, r.output
    assert "videos read at 64x48, the videos' own size" in r.stderr
    assert seen == [VIDEO, VIDEO]
    assert checkpoint.load(run / "checkpoint.pt")["video_size"] == list(VIDEO)
    seen.clear()
    r = CliRunner().invoke(main, [*args, "--epochs", "2", "--resume"])
    assert r.exit_code == 0, r.output
    assert "videos read at 64x48, the run's size" in r.stderr and seen == [VIDEO, VIDEO]
