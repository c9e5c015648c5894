"""The array cache as a file: a new cache appears only when prepare ends with videos in
it (written as ``.part``, renamed; a killed run resumes the ``.part``; a run that wrote
nothing leaves no file), and every reader of a cache that is incomplete or of another
version, and every CLI command that opens one, gives one clear error naming the file."""
import json

import h5py
import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.data import cache as cache_mod
from hybrid.data.arrayfile import CacheReader
from hybrid.data.cache import PrepareConfig, prepare
from hybrid.data.dataset import CompressedVideoDataset
from hybrid.data.sources import load_split
from hybrid.video.extract import FormatError
from hybrid.video.synth import SynthConfig, make_dataset

SIZE = (64, 48)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("files") / "ds"
    make_dataset(root, classes=2, per_class=3, seed=4, cfg=SynthConfig(size=SIZE, frames=24))
    return root


def _prepare(root, out, *extra):
    return CliRunner().invoke(main, ["prepare", "--store", "arrays", str(root), "-o", str(out),
                                     "--size",
                                     f"{SIZE[0]}x{SIZE[1]}", "--workers", "1", *extra])


def _left(out):
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name))


def test_prepare_of_an_empty_folder_leaves_no_cache(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "c.h5"
    res = _prepare(tmp_path / "empty", out)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.startswith("Error: ") and "empty" in res.output
    assert _left(out) == []


def test_prepare_of_only_bad_videos_leaves_no_cache(data, tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    for p in sorted(data.rglob("*")):
        q = root / p.relative_to(data)
        if p.is_dir():
            q.mkdir(parents=True)
        elif p.suffix == ".avi":
            q.write_bytes(p.read_bytes()[:300])  # truncated: every video unreadable
        else:
            q.write_bytes(p.read_bytes())
    out = tmp_path / "c.h5"
    res = _prepare(root, out)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "not written" in res.output and res.output.count("skipped:") == 6
    assert _left(out) == []


def test_a_killed_prepare_leaves_a_part_that_resumes(data, tmp_path, monkeypatch):
    """Killed after two videos: no cache under its name, the .part holds the two; the
    re-run resumes it (two already done) and publishes the cache."""
    out = tmp_path / "c.h5"
    work = cache_mod.extract_one
    calls = []

    def dies_at_the_third(args):
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return work(args)

    monkeypatch.setattr(cache_mod, "extract_one", dies_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        prepare(data, out, PrepareConfig(size=SIZE), workers=1)
    assert not out.exists()
    with h5py.File(out.with_name("c.h5.part"), "r") as f:
        assert len(f["videos"]) == 2
    monkeypatch.setattr(cache_mod, "extract_one", work)
    s = prepare(data, out, PrepareConfig(size=SIZE), workers=1)
    assert s["already_done"] == 2 and s["prepared"] == 4 and s["cache"] == str(out)
    assert _left(out) == ["c.h5"]  # no .part, no .lock
    assert s["bytes"] == out.stat().st_size
    # a killed run before any video leaves nothing
    out2 = tmp_path / "d.h5"
    calls.clear()
    monkeypatch.setattr(cache_mod, "extract_one",
                        lambda a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        prepare(data, out2, PrepareConfig(size=SIZE), workers=1)
    assert _left(out2) == []
    # a re-run into a published cache updates it in place
    monkeypatch.setattr(cache_mod, "extract_one", work)
    s = prepare(data, out, PrepareConfig(size=SIZE), workers=1)
    assert s["already_done"] == 6 and s["prepared"] == 0 and s["cache"] == str(out)


def _broken(tmp_path, data, kind):
    """A cache file as a failed or old prepare leaves it: ``empty`` (the ~800-byte file
    of a prepare that failed before writing), ``no-classes`` (header without the class
    list), ``v1`` (a complete cache of format version 1)."""
    out = tmp_path / f"{kind}.h5"
    if kind == "empty":
        h5py.File(out, "w").close()
        return out
    s = prepare(data, out, PrepareConfig(size=SIZE), workers=1)
    assert s["prepared"] == 6
    with h5py.File(out, "a") as f:
        if kind == "no-classes":
            del f.attrs["classes"]
        else:
            f.attrs["version"] = 1
    return out


@pytest.mark.parametrize("kind", ["empty", "no-classes", "v1"])
def test_every_reader_of_a_broken_cache_names_the_file(data, tmp_path, kind):
    out = _broken(tmp_path, data, kind)
    want = {"empty": "empty HDF5 file.*prepare", "no-classes": "incomplete.*classes.*prepare",
            "v1": "format version 1.*prepare"}[kind]
    for read in (lambda: load_split(out, "train"), lambda: CacheReader(out),
                 lambda: CompressedVideoDataset(out, [("a.avi", 0)])):
        with pytest.raises(FormatError, match=f"{out}: .*{want}"):
            read()
    # a folder of shard caches holding it
    folder = tmp_path / f"shards-{kind}"
    folder.mkdir()
    (folder / out.name).symlink_to(out)
    if kind != "empty":  # an empty file is not taken for a shard: the folder is not one
        with pytest.raises(FormatError, match=f"{folder / out.name}: "):
            load_split(folder, "train")


@pytest.mark.parametrize("kind", ["empty", "no-classes", "v1"])
def test_train_and_pretrain_on_a_broken_cache_say_one_line(data, tmp_path, kind):
    out = _broken(tmp_path, data, kind)
    for cmd in (["train", str(out), "-o", str(tmp_path / "run"), "--epochs", "1"],
                ["pretrain", str(out), "-o", str(tmp_path / "pre"), "--epochs", "1"]):
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), (
            cmd[0], res.output, res.exception)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {out}: "), (cmd[0], lines)
        assert "prepare" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["no-classes", "v1"])
def test_every_command_that_opens_a_cache_says_one_line(data, trained, deployed, tmp_path,
                                                        kind):
    """eval (one fold and --fold all), profile (checkpoint and deploy folder) and run:
    the same one line through the CLI group's one path."""
    out = _broken(tmp_path, data, kind)
    ck, art = str(trained[1]), str(deployed.path)
    by_fold = str(trained[1].parent.parent / "{fold}" / "checkpoint.pt")
    v = ["--views", "2x1"]
    cmds = [["eval", ck, str(out), *v], ["eval", by_fold, str(out), "--fold", "all", *v],
            ["profile", ck, str(out), *v], ["profile", art, str(out), *v],
            ["run", art, str(out)]]
    for cmd in cmds:
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), (
            cmd[0], res.output, res.exception)
        lines = res.output.strip().splitlines()
        assert lines and lines[-1].startswith(f"Error: {out}: "), (cmd, lines)
        assert "Traceback" not in res.output


def test_prepare_json_summary_of_a_cache_not_written(tmp_path, data):
    root = tmp_path / "one-bad"
    root.mkdir()
    (root / "a").mkdir()
    (root / "b").mkdir()
    for c in "ab":
        for k in range(2):
            (root / c / f"{c}{k}.avi").write_bytes(b"not a video")
    res = _prepare(root, tmp_path / "c.h5", "--json")
    assert res.exit_code == 1
    s = json.loads(res.stdout)
    assert s["cache"] is None and s["bytes"] == 0 and len(s["failed"]) == 4


def test_video_cache_leaves_no_lock(data, tmp_path):
    from hybrid.data.videocache import prepare_videos

    out = tmp_path / "vc"
    s = prepare_videos(data, out, SIZE, workers=1)
    assert s["prepared"] == 6 and not (out / ".lock").exists()


def test_a_removed_lock_file_is_never_held_twice(tmp_path, monkeypatch):
    """The race deleting lock files opens: B opens the lock file, A (its holder) deletes
    it and lets go, B locks the deleted file while C creates and locks a new one. hold()
    checks after locking that the path still names its file, and opens it afresh if not."""
    import fcntl
    import os

    from hybrid import locking

    lock = tmp_path / "c.h5.lock"
    with locking.hold(lock, "cache c.h5", remove=True):
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(locking.LockedError, match=f"cache c.h5 is in use.*pid {os.getpid()}"):
            with locking.hold(lock, "cache c.h5", remove=True):
                pass
    assert not lock.exists()
    real_open, opened = os.open, []

    def open_then_holder_deletes(path, *a):
        fd = real_open(path, *a)
        opened.append(fd)
        if len(opened) == 1:
            os.unlink(path)  # the last holder deleted it (and let go) just after our open
        return fd

    monkeypatch.setattr(locking.os, "open", open_then_holder_deletes)
    with locking.hold(lock, "cache c.h5", remove=True):
        assert len(opened) == 2  # the deleted file was locked, seen, and given up
        fd = real_open(lock, os.O_RDWR)  # another process now finds it held
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    monkeypatch.undo()
    run_lock = tmp_path / "run" / ".lock"
    with locking.hold(run_lock, "run folder run"):
        pass
    assert run_lock.exists()  # a run folder's lock file stays (remove=False)


def test_a_failed_video_cache_prepare_leaves_no_folder(data, tmp_path):
    """An empty dataset folder, or only bad videos: no video cache folder is left (one
    that existed empty before stays, empty)."""
    (tmp_path / "empty").mkdir()
    vc = tmp_path / "vc"
    res = CliRunner().invoke(main, ["prepare", str(tmp_path / "empty"), "-o",
                                    str(vc), "--workers", "1"])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and not vc.exists()
    root = tmp_path / "bad"
    for c in "ab":
        (root / c).mkdir(parents=True)
        for k in range(2):
            (root / c / f"{c}{k}.avi").write_bytes(b"not a video")
    for target, existed in ((tmp_path / "vc2", False), (tmp_path / "vc3", True)):
        if existed:
            target.mkdir()
        res = CliRunner().invoke(main, ["prepare", str(root), "-o", str(target),
                                        "--workers", "1"])
        assert res.exit_code == 1 and "not written" in res.output, res.output
        assert res.output.count("skipped:") == 4
        assert (list(target.iterdir()) == []) if existed else not target.exists()
