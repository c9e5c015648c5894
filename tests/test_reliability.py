"""What a demanding user broke (issue 13): bad caches and checkpoints, concurrent runs,
odd options and paths, untrusted split files. Each test failed before its fix. The
signal cases (SIGTERM with Lava running, SIGKILL then --resume) are in
``test_signals.py``."""
import json
import shutil

import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.video.synth import SynthConfig, make_dataset

SIZE = "32"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """2 classes x 4 videos (3 train + 1 test each), 64x48, 2 GOPs."""
    out = tmp_path_factory.mktemp("synth")
    make_dataset(out, classes=2, per_class=4, seed=0, cfg=SynthConfig(size=(64, 48), frames=24))
    return out


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A run folder with a 1-epoch checkpoint of the tiny model on ``data``."""
    run = tmp_path_factory.mktemp("trained") / "run"
    res = CliRunner().invoke(main, ["train", str(data), "-o", str(run), "--epochs", "1",
                                    "--size", SIZE, "--segments", "1"])
    assert res.exit_code == 0, res.output
    return run


def _run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), (
        f"uncaught {type(res.exception).__name__}: {res.exception}\n{res.output}")
    return res


# 1. a cache with a skipped video -------------------------------------------------------

def test_cache_with_a_skipped_video_trains_and_evaluates(data, tmp_path, caplog):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    bad = copy / "move_up" / "move_up_000.avi"  # a training video
    bad.write_bytes(bytes(range(256)) * 64)
    cache = tmp_path / "mix.h5"
    res = _run("prepare", copy, "-o", cache, "--size", "64x48", "--workers", "1")
    assert res.exit_code == 1 and "move_up_000.avi" in res.output
    run = tmp_path / "r"
    res = _run("train", cache, "-o", run, "--epochs", "1", "--size", SIZE, "--segments", "1")
    assert res.exit_code == 0, res.output
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("move_up_000.avi" in m and "prepare" in m for m in warned), warned
    assert (run / "checkpoint.pt").is_file()
    res = _run("eval", run / "checkpoint.pt", cache, "--split", "train", "--views", "1x1",
               "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["videos"] == 5 and len(out["skipped"]) == 1
    assert "move_up_000.avi" in out["skipped"][0]


# 7. a 0-byte (or truncated) checkpoint ---------------------------------------------------

@pytest.mark.parametrize("kind", ["empty", "truncated"])
def test_empty_or_truncated_checkpoint_is_a_clear_error(data, trained, tmp_path, kind):
    run = tmp_path / "run"
    run.mkdir()
    ck = run / "checkpoint.pt"
    good = (trained / "checkpoint.pt").read_bytes()
    ck.write_bytes(b"" if kind == "empty" else good[: len(good) // 2])
    video = next(data.glob("move_up/*.avi"))
    for args in (["predict", ck, video], ["eval", ck, data],
                 ["train", data, "-o", run, "--resume", "--epochs", "2", "--size", SIZE]):
        res = _run(*args)
        assert res.exit_code == 1 and "checkpoint.pt" in res.output, (args, res.output)
        if kind == "empty":
            assert "empty (0 bytes" in res.output
    assert ck.stat().st_size == (0 if kind == "empty" else len(good) // 2)  # left as it was


# 9. split files are not trusted -----------------------------------------------------------

def _ucf_copy(data, tmp_path):
    copy = tmp_path / "ucf"
    shutil.copytree(data, copy)
    return copy


def test_split_entry_outside_the_dataset_is_refused(data, tmp_path):
    from hybrid.data.splits import SplitError, load_split

    root = _ucf_copy(data, tmp_path / "in")
    secret = tmp_path / "elsewhere" / "secret.avi"
    secret.parent.mkdir()
    shutil.copy(next(root.glob("move_up/*.avi")), secret)
    with open(root / "trainlist01.txt", "a") as f:
        f.write("move_up/../../../elsewhere/secret.avi 1\n")
    assert (root / "move_up/../../../elsewhere/secret.avi").resolve() == secret.resolve()
    with pytest.raises(SplitError, match="secret.avi.*outside the dataset"):
        load_split(root, "train")
    res = _run("prepare", root, "-o", tmp_path / "c.h5", "--size", "64x48")
    assert res.exit_code == 1 and "outside the dataset" in res.output


@pytest.mark.parametrize("case", ["duplicate", "empty class", "one class"])
def test_class_lists_that_cannot_train_are_refused(data, tmp_path, case):
    from hybrid.data.splits import SplitError, load_split

    root = _ucf_copy(data, tmp_path)
    ind = root / "classInd.txt"
    if case == "duplicate":
        ind.write_text(ind.read_text() + "3 Move_Up\n")
        match = "'Move_Up' .*listed twice"
    elif case == "empty class":
        (root / "jump").mkdir()
        ind.write_text(ind.read_text() + "3 jump\n")
        match = r"\['jump'\] have no training videos"
    else:
        ind.write_text("1 move_up\n")
        for name in ("trainlist01.txt", "testlist01.txt"):
            lst = root / name
            lst.write_text("".join(ln + "\n" for ln in lst.read_text().splitlines()
                                   if ln.startswith("move_up/")))
        match = "1 class .*at least 2"
    with pytest.raises(SplitError, match=match):
        load_split(root, "train")
    res = _run("train", root, "-o", tmp_path / "run", "--epochs", "1", "--size", SIZE)
    assert res.exit_code == 1 and not (tmp_path / "run" / "checkpoint.pt").exists()


# 10. a folder given as VIDEO ------------------------------------------------------------

def test_a_folder_as_video_is_named_as_a_folder(data, trained, tmp_path):
    for args in (["inspect", data], ["extract", data, "-o", tmp_path / "x.h5"],
                 ["predict", trained / "checkpoint.pt", data / "move_up"]):
        res = _run(*args)
        assert res.exit_code == 1 and "is a folder, not a video file" in res.output, res.output
