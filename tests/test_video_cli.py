"""``hybrid synth``, ``inspect``, ``extract`` through click's CliRunner; the extract file
round trip; the synthetic dataset's determinism and class design."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.video.extract import FormatError, extract_arrays, read_extract
from hybrid.video.reader import read_gops
from hybrid.video.synth import MOTIONS, SynthConfig, make_dataset, render_video

SMALL = ["--size", "64x48", "--frames", "24"]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    res = CliRunner().invoke(main, ["synth", str(root), "--classes", "4", "--per-class", "2",
                                    "--seed", "3", *SMALL, "--json"])
    assert res.exit_code == 0, res.output
    return root, json.loads(res.stdout)


def test_synth_layout_and_splits(synth_root):
    root, summary = synth_root
    assert summary["classes"] == [m.name for m in MOTIONS[:4]] and summary["videos"] == 8
    assert (root / "classInd.txt").read_text().splitlines()[1] == "2 move_down"
    train = (root / "trainlist01.txt").read_text().splitlines()
    test = (root / "testlist01.txt").read_text().splitlines()
    assert train[0] == "move_up/move_up_000.avi 1" and len(train) == 4  # one held out a class
    assert test[0] == "move_up/move_up_001.avi" and len(test) == 4
    assert all((root / line.split()[0]).is_file() for line in train + test)


def test_synth_is_deterministic_and_seed_matters():
    cfg = SynthConfig(size=(64, 48), frames=12)
    a, b = render_video(1, 7, cfg), render_video(1, 7, cfg)
    c = render_video(1, 8, cfg)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not all((x == y).all() for x, y in zip(a, c))


def test_synth_same_appearance_pair_differs_in_motion(tmp_path):
    """move_up vs move_down: same shape/colour distribution; the accumulated MV y of
    the moving object has opposite signs."""
    make_dataset(tmp_path, classes=2, per_class=2, seed=0,
                 cfg=SynthConfig(noise=0, jitter=0, distractors=0))
    signs = []
    for name in ("move_up", "move_down"):
        for i in range(2):
            g = next(read_gops(tmp_path / name / f"{name}_{i:03d}.avi"))
            moving = g.mv[10][..., 1][np.abs(g.mv[10][..., 1]) > 5]
            assert moving.size > 100, f"{name}: object motion too weak to learn"
            signs.append(np.sign(np.median(moving)))
    assert signs == [-1, -1, 1, 1]


def test_inspect_json(synth_root):
    root, _ = synth_root
    res = CliRunner().invoke(main, ["inspect", str(root / "move_up/move_up_000.avi"),
                                    "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["codec"] == "mpeg4" and (info["width"], info["height"]) == (64, 48)
    assert info["frame_types"] == ("I" + "P" * 11) * 2 and info["gop_sizes"] == [12, 12]
    assert info["motion_vectors"]["vectors"] > 0 and info["motion_vectors"]["mean_y"] < 0


@pytest.mark.parametrize("acc,cov", [(True, True), (False, True), (True, False)])
def test_extract_roundtrip(synth_root, tmp_path, acc, cov):
    root, _ = synth_root
    video = root / "move_down/move_down_001.avi"
    out = tmp_path / "x.h5"
    args = ["extract", str(video), "-o", str(out), "--json",
            "--accumulate" if acc else "--no-accumulate", "--coviar" if cov else "--subpixel"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["shapes"] == {
        "iframe": [2, 48, 64, 3], "mv": [2, 11, 48, 64, 2], "residual": [2, 11, 48, 64, 3],
        "p_frames": [2]}
    arrays, attrs = read_extract(out)
    assert attrs["accumulate"] == acc and attrs["coviar"] == cov
    assert arrays["iframe"].dtype == np.uint8 and arrays["mv"].dtype == np.float32
    direct = extract_arrays(video, acc, cov)
    for k in direct:
        np.testing.assert_array_equal(arrays[k], direct[k])


def test_extract_rejects_foreign_h5(tmp_path):
    import h5py

    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "hybrid-compressed-video"
        f.attrs["version"] = 99
    with pytest.raises(FormatError, match="version 99"):
        read_extract(p)


@pytest.mark.parametrize("cmd", ["inspect", "extract"])
def test_cli_bad_input_exits_nonzero_without_traceback(tmp_path, cmd):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"")
    args = [cmd, str(bad)] + (["-o", str(tmp_path / "o.h5")] if cmd == "extract" else [])
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert str(bad) in res.output and "empty" in res.output
    assert not (tmp_path / "o.h5").exists()


def test_cli_bad_size_is_usage_error(tmp_path):
    res = CliRunner().invoke(main, ["synth", str(tmp_path), "--size", "65x48"])
    assert res.exit_code == 2 and "even" in res.output


def test_help_lists_video_commands():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    for cmd in ("synth", "inspect", "extract", "prepare"):
        assert cmd in res.output
