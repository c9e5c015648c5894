"""`hybrid synth` output folders: a rerun replaces an earlier dataset whole, anything else
non-empty is refused, an interrupted run leaves nothing, and every class has a held-out
video."""
import json

import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.data.sources import load_split
from hybrid.video.synth import SynthConfig, SynthError, is_test, make_dataset

SMALL = ["--size", "32x32", "--frames", "12"]
CFG = SynthConfig(size=(32, 32), frames=12)


def _synth(out, *args):
    return CliRunner().invoke(main, ["synth", str(out), *SMALL, *args])


def _videos(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.avi"))


def test_rerun_replaces_the_earlier_dataset_whole(tmp_path):
    out = tmp_path / "ds"
    r = _synth(out, "--classes", "3", "--per-class", "3")
    assert r.exit_code == 0, r.output
    assert "replaced" not in r.output and len(_videos(out)) == 9
    r = _synth(out, "--classes", "2", "--per-class", "2")
    assert r.exit_code == 0, r.output
    assert f"replaced the earlier synth dataset in {out} (9 videos)" in r.output
    train, classes = load_split(out, "train")
    test, _ = load_split(out, "test")
    # no stale video of the first run: exactly what the split files list
    assert _videos(out) == sorted(rel for rel, _ in train + test)
    assert classes == ["move_up", "move_down"] and len(_videos(out)) == 4
    man = json.loads((out / "synth.json").read_text())
    assert man["format"] == "hybrid-synth" and man["videos"] == 4
    assert sorted(man["files"]) == sorted(str(p.relative_to(out)) for p in out.rglob("*")
                                          if p.is_file() and p.name != "synth.json")
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no staging folder left


def test_a_folder_not_made_by_synth_is_refused_and_kept(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    r = _synth(out, "--classes", "2", "--per-class", "2")
    assert r.exit_code == 1 and "not a `hybrid synth` dataset" in r.output
    assert str(out) in r.output and (out / "notes.txt").read_text() == "keep me"
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    # a synth dataset with a file the user added beside it: refused too, naming the file
    ds = tmp_path / "ds"
    assert _synth(ds, "--classes", "2", "--per-class", "2").exit_code == 0
    (ds / "move_up" / "extra.avi").write_bytes(b"x")
    r = _synth(ds, "--classes", "2", "--per-class", "2")
    assert r.exit_code == 1 and "move_up/extra.avi" in r.output
    assert (ds / "move_up" / "extra.avi").is_file()
    # an empty folder is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _synth(empty, "--classes", "2", "--per-class", "2").exit_code == 0


def test_an_interrupted_synth_leaves_nothing_and_keeps_the_earlier_dataset(tmp_path):
    out = tmp_path / "ds"
    calls = []

    def interrupt(n):
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_dataset(out, classes=2, per_class=3, cfg=CFG, progress=interrupt)
    assert list(tmp_path.iterdir()) == []  # no videos without split files, no staging
    make_dataset(out, classes=2, per_class=2, cfg=CFG)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        make_dataset(out, classes=3, per_class=3, cfg=CFG, progress=interrupt)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


@pytest.mark.parametrize("per_class", [2, 3, 4, 5, 7, 8, 12])
def test_every_class_has_a_held_out_video(per_class):
    held = [i for i in range(per_class) if is_test(i, per_class, 4)]
    assert 1 <= len(held) < per_class
    assert len(held) == max(1, per_class // 4)
    if per_class % 4 == 0:  # as before: every 4th video
        assert held == list(range(3, per_class, 4))


def test_per_class_3_gives_test_videos_and_1_is_refused(tmp_path):
    out = tmp_path / "ds"
    r = _synth(out, "--classes", "2", "--per-class", "3", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert (s["train"], s["test"]) == (4, 2)
    test, _ = load_split(out, "test")
    assert sorted(lab for _, lab in test) == [0, 1]
    r = _synth(tmp_path / "one", "--classes", "2", "--per-class", "1")
    assert r.exit_code == 2 and "--per-class" in r.output
    assert not (tmp_path / "one").exists()
    with pytest.raises(SynthError, match="per_class must be >= 2"):
        make_dataset(tmp_path / "one", classes=2, per_class=1, cfg=CFG)


def test_the_current_folder_is_refused_clearly(tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for out in (".", str(here), ".."):
        r = _synth(out, "--classes", "2", "--per-class", "2")
        assert r.exit_code == 1 and "is the current folder" in r.output, r.output
    assert list(tmp_path.iterdir()) == [here] and list(here.iterdir()) == []


def test_order_pairs_end_each_gop_alike_and_differ_inside():
    """The temporal-order set: both classes of a pair start and end every GOP at the same
    displacement (the last accumulated P-frame sees the same motion), and differ by
    several px inside the GOP (only the P-frame sequence tells them apart)."""
    from hybrid.video.synth import GOP, ORDER_MOTIONS

    assert len(ORDER_MOTIONS) == 6
    for a, b in zip(ORDER_MOTIONS[::2], ORDER_MOTIONS[1::2]):
        assert a.mirror == b.mirror and a.spin == b.spin == 0 and a.zoom == b.zoom == 1
        pa = [(a.vx * a.progress(k), a.vy * a.progress(k)) for k in range(GOP)]
        pb = [(b.vx * b.progress(k), b.vy * b.progress(k)) for k in range(GOP)]
        assert pa[0] == pb[0] == (0, 0)
        assert pa[-1] == pytest.approx(pb[-1]), (a.name, b.name)
        gap = max(abs(xa - xb) + abs(ya - yb) for (xa, ya), (xb, yb) in zip(pa, pb))
        assert gap >= 6, (a.name, b.name, gap)


def test_cli_synth_order_set(tmp_path):
    out = tmp_path / "order"
    r = CliRunner().invoke(main, ["synth", str(out), "--motions", "order", "--classes", "6",
                                  "--per-class", "2", "--size", "64x48", "--frames", "12",
                                  "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["classes"] == [
        "up_and_back", "down_and_back", "move_then_rest", "rest_then_move", "speed_up",
        "slow_down"]
    assert load_split(out, "test")[1][0] == "up_and_back"
    r = CliRunner().invoke(main, ["synth", str(tmp_path / "x"), "--motions", "order",
                                  "--classes", "7"])
    assert r.exit_code == 1 and "2..6" in r.output and "'order'" in r.output
