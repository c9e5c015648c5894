"""What a demanding user broke (issue 13): bad caches and checkpoints, concurrent runs,
odd options and paths, untrusted split files. Each test failed before its fix. The
signal cases (SIGTERM with Lava running, SIGKILL then --resume) are in
``test_signals.py``."""
import json
import shutil

import pytest
import torch
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
    res = _run("prepare", "--store", "arrays", copy, "-o", cache, "--size", "64x48", "--workers",
               "1")
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


# 3. two runs into one run folder or one cache ------------------------------------------

def test_second_concurrent_train_or_prepare_fails_at_once(data, trained, tmp_path):
    from hybrid import locking

    run = tmp_path / "run"
    with locking.hold(run / ".lock", "first run"):  # a first `hybrid train -o run` runs
        res = _run("train", data, "-o", run, "--epochs", "1", "--size", SIZE)
        assert res.exit_code == 1 and "in use by another process" in res.output
        assert str(run) in res.output and not (run / "checkpoint.pt").exists()
    cache = tmp_path / "c.h5"
    with locking.hold(tmp_path / "c.h5.lock", "first prepare"):
        res = _run("prepare", "--store", "arrays", data, "-o", cache, "--size", "64x48",
                   "--workers", "1")
        assert res.exit_code == 1 and "in use by another process" in res.output
        assert not cache.exists()  # refused before any transcoding
    # the lock goes with its holder: then both work
    res = _run("prepare", "--store", "arrays", data, "-o", cache, "--size", "64x48", "--workers",
               "1")
    assert res.exit_code == 0, res.output


def test_prepare_into_a_cache_being_read_is_a_clear_error(data, tmp_path):
    import h5py

    cache = tmp_path / "c.h5"
    assert _run("prepare", "--store", "arrays", data, "-o", cache, "--size", "64x48", "--workers",
                "1").exit_code == 0
    with h5py.File(cache, "r"):  # a training run reads it
        res = _run("prepare", "--store", "arrays", data, "-o", cache, "--size", "64x48",
                   "--workers", "1")
    assert res.exit_code == 1 and "open in another process" in res.output, res.output


# 5. eval's plot cannot be written ---------------------------------------------------------

def test_eval_prints_its_result_when_the_plot_cannot_be_written(data, trained, tmp_path):
    ro = tmp_path / "media"  # stands in for read-only media: confusion.png cannot be written
    ro.mkdir()
    shutil.copy(trained / "checkpoint.pt", ro / "checkpoint.pt")
    (ro / "confusion.png").mkdir()
    res = _run("eval", ro / "checkpoint.pt", data, "--views", "1x1", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["videos"] == 2 and out["plot"] is None and "warning" in res.stderr
    # --plot into a missing folder: made; into a place that cannot be a folder: refused
    # before the evaluation, with the option named
    res = _run("eval", ro / "checkpoint.pt", data, "--views", "1x1", "--plot",
               tmp_path / "new" / "dir" / "c.png")
    assert res.exit_code == 0 and (tmp_path / "new" / "dir" / "c.png").stat().st_size > 0
    res = _run("eval", ro / "checkpoint.pt", data, "--plot", ro / "checkpoint.pt" / "c.png")
    assert res.exit_code == 2 and "--plot" in res.output and "videos" not in res.stdout


# 8. output paths and numbers --------------------------------------------------------------

def test_unwritable_outputs_are_clear_errors(data, tmp_path):
    video = next(data.glob("move_up/*.avi"))
    blocker = tmp_path / "a_file"  # a path under a file stands in for read-only media
    blocker.write_text("x")
    res = _run("extract", video, "-o", blocker / "dir" / "x.h5")
    assert res.exit_code == 2 and "-o" in res.output and "a_file" in res.output
    res = _run("extract", video, "-o", tmp_path / "missing" / "dir" / "x.h5")  # made
    assert res.exit_code == 0 and (tmp_path / "missing" / "dir" / "x.h5").is_file()
    res = _run("synth", blocker / "ds", "--classes", "2", "--per-class", "2")
    assert res.exit_code == 1 and "cannot write" in res.output and "a_file" in res.output
    res = _run("train", data, "-o", blocker / "run", "--epochs", "1", "--size", SIZE)
    assert res.exit_code == 1 and "cannot write" in res.output and "a_file" in res.output


@pytest.mark.parametrize("opt", [("--lr", "nan"), ("--lr", "inf"), ("--weight-decay", "nan"),
                                 ("--weight-decay", "inf")])
def test_non_finite_options_are_refused(data, tmp_path, opt):
    res = _run("train", data, "-o", tmp_path / "run", *opt)
    assert res.exit_code == 2 and opt[0] in res.output and "finite" in res.output
    assert not (tmp_path / "run").exists()


def test_a_diverging_run_stops_at_the_first_non_finite_loss(data, tmp_path, monkeypatch):
    """Loaders hand over uint8 codes, which cannot hold a NaN: the diverged run's NaNs
    enter where floats first exist, the decoded inputs, from the first batch after
    epoch 1 was saved (without depending on how fast a learning rate blows up)."""
    from hybrid.data.dataset import open_split
    from hybrid.model import HybridConfig
    from hybrid.training import checkpoint
    from hybrid.training import train as train_mod
    from hybrid.training.train import DivergedError, TrainConfig, train

    saved = []

    def nan_after_epoch_1(batch, device=None):
        out = train_mod_decode(batch, device)
        if saved:
            out["iframe"] = torch.full_like(out["iframe"], float("nan"))
        return out

    train_mod_decode = train_mod.decode
    monkeypatch.setattr(train_mod, "decode", nan_after_epoch_1)
    (tr, classes), (te, _) = (open_split(data, s, 1, s == "train", 32, seed=0)
                              for s in ("train", "test"))
    mcfg = HybridConfig(num_classes=2, segments=1, size=(32, 32), stm={"widths": (4, 4, 4)})
    run = tmp_path / "run"
    with pytest.raises(DivergedError, match=r"epoch 2/3, batch 1: the loss is nan.*epoch 1"):
        train((tr, te), classes, run, mcfg, TrainConfig(epochs=3, batch_size=3),
              on_epoch_end=saved.append)
    assert saved == [1]
    assert checkpoint.load(run / "checkpoint.pt")["epoch"] == 1  # the last good one, kept
    assert (run / "metrics.csv").read_text().count("\n") == 2  # header + epoch 1


def test_prepare_refuses_a_file_of_another_format(data, tmp_path):
    import h5py

    video = next(data.glob("move_up/*.avi"))
    ext = tmp_path / "an_extract_output.h5"
    assert _run("extract", video, "-o", ext).exit_code == 0
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["weights"] = [1, 2, 3]
    not_h5 = tmp_path / "video.h5"
    shutil.copy(video, not_h5)
    for out, why in ((ext, "`hybrid extract` file"), (other, "another program"),
                     (not_h5, "cannot open as an HDF5")):
        before = out.read_bytes()
        res = _run("prepare", "--store", "arrays", data, "-o", out, "--size", "64x48", "--workers",
                   "1")
        assert res.exit_code == 1 and out.name in res.output and why in res.output, res.output
        assert out.read_bytes() == before  # left as it was


# 9. split files are not trusted -----------------------------------------------------------

def _ucf_copy(data, tmp_path):
    copy = tmp_path / "ucf"
    shutil.copytree(data, copy)
    return copy


def test_split_entry_outside_the_dataset_is_refused(data, tmp_path):
    from hybrid.data.sources import load_split
    from hybrid.data.splits import SplitError

    root = _ucf_copy(data, tmp_path / "in")
    secret = tmp_path / "elsewhere" / "secret.avi"
    secret.parent.mkdir()
    shutil.copy(next(root.glob("move_up/*.avi")), secret)
    with open(root / "trainlist01.txt", "a") as f:
        f.write("move_up/../../../elsewhere/secret.avi 1\n")
    assert (root / "move_up/../../../elsewhere/secret.avi").resolve() == secret.resolve()
    with pytest.raises(SplitError, match="secret.avi.*outside the dataset"):
        load_split(root, "train")
    res = _run("prepare", "--store", "arrays", root, "-o", tmp_path / "c.h5", "--size", "64x48")
    assert res.exit_code == 1 and "outside the dataset" in res.output


@pytest.mark.parametrize("case", ["duplicate", "empty class", "one class"])
def test_class_lists_that_cannot_train_are_refused(data, tmp_path, case):
    from hybrid.data.sources import load_split
    from hybrid.data.splits import SplitError

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


# 4. prepare resumes only the same source -----------------------------------------------

def test_prepare_resumes_only_the_same_source(data, tmp_path):
    import h5py

    root = _ucf_copy(data, tmp_path / "a")
    cache = tmp_path / "c.h5"
    args = ("--size", "64x48", "--workers", "1", "--json")
    first = json.loads(_run("prepare", "--store", "arrays", root, "-o", cache, *args).stdout)
    assert first["prepared"] == 8
    again = json.loads(_run("prepare", "--store", "arrays", root, "-o", cache, *args).stdout)
    assert again["prepared"] == 0 and again["already_done"] == 8 and again["changed"] == 0
    # a source video replaced by another (other content, size and time): extracted again
    victim, other = root / "move_up" / "move_up_000.avi", root / "move_down" / "move_down_001.avi"
    shutil.copy(other, victim)
    res = json.loads(_run("prepare", "--store", "arrays", root, "-o", cache, *args).stdout)
    assert res["prepared"] == 1 and res["changed"] == 1 and res["already_done"] == 7
    with h5py.File(cache, "r") as f:
        want = extract_iframe(other)
        assert (f["videos"]["move_up|move_up_000.avi"]["iframe"][0] == want).all()
    # another dataset into the same cache: refused by name, the cache left as it was
    elsewhere = _ucf_copy(data, tmp_path / "b")
    res = _run("prepare", "--store", "arrays", elsewhere, "-o", cache, *args)
    assert res.exit_code == 1 and "made from the dataset" in res.output
    assert str(root.resolve()) in res.output


def extract_iframe(path):
    from hybrid.video.extract import extract_arrays

    return extract_arrays(path)["iframe"][0]
