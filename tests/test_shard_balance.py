"""Issue 24, case 8: ``--shard K/N`` parts are balanced (crc32 of the path put whole
classes in one part: `--shard K/8` of a 3-class set left parts 4-8 empty)."""
from __future__ import annotations

import json
import random

import h5py
import pytest
from click.testing import CliRunner
from proctools import synth_set

from hybrid.cli import main
from hybrid.data import partition


def _ucf_names(seed: int, classes=("ApplyEyeMakeup", "Archery", "Basketball")) -> list[str]:
    """UCF-101 style paths: per class 25 groups of 4-7 clips, v_<Class>_gXX_cYY.avi."""
    rng = random.Random(seed)
    return [f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi" for c in classes for g in range(1, 26)
            for k in range(1, rng.randint(4, 7) + 1)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ucf_style_shards_are_balanced(seed):
    """N = 8 over 25 groups x 4-7 clips a class: every part non-empty, sizes within one
    group (4 clips, the smallest) of each other; each video in exactly one part."""
    for classes in (("ApplyEyeMakeup",), ("ApplyEyeMakeup", "Archery", "Basketball")):
        names = _ucf_names(seed, classes)
        part = partition.assign_shards(reversed(names), 8)  # any order: the same parts
        assert part == partition.assign_shards(names, 8) and set(part) == set(names)
        sizes = [sum(1 for k in part.values() if k == s) for s in range(1, 9)]
        assert min(sizes) > 0 and max(sizes) - min(sizes) <= 4, sizes
        # a class is spread, not clustered: one class's clips reach every part
        cls = classes[0]
        assert {k for r, k in part.items() if r.startswith(cls)} == set(range(1, 9))


@pytest.mark.parametrize("n", [2, 3, 8])
def test_every_part_has_videos_while_there_are_n(n):
    names = [f"move_up/move_up_{i:03d}.avi" for i in range(4)] + [
        f"move_down/move_down_{i:03d}.avi" for i in range(4)]
    for v in range(n, len(names) + 1):
        part = partition.assign_shards(names[:v], n)
        sizes = [list(part.values()).count(k) for k in range(1, n + 1)]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1, (v, sizes)
    with pytest.raises(ValueError, match="N must be >= 1"):
        partition.assign_shards(names, 0)


def _prepare(data, out, *extra):
    return CliRunner().invoke(main, ["prepare", "--store", "arrays", str(data), "-o", str(out),
                                     "--size", "64x48",
                                     "--workers", "1", "--json", *extra])


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return synth_set(tmp_path_factory, "ds", classes=3, per_class=2, frames=24, seed=1)


def test_shards_of_a_small_set_are_all_written_and_read_as_one(ds, tmp_path):
    """6 videos in 8 shards: 6 shards of one video, 2 empty shards that are written
    (valid caches, exit 0); the folder reads as the whole dataset, each video once."""
    from hybrid.data.shards import ShardedCacheReader
    from hybrid.data.sources import load_split

    shards = tmp_path / "shards"
    shards.mkdir()
    held = []
    for k in range(1, 9):
        res = _prepare(ds, shards / f"s{k}.h5", "--shard", f"{k}/8")
        assert res.exit_code == 0, res.output
        rep = json.loads(res.stdout)
        with h5py.File(rep["cache"], "r") as f:
            held.append({f["videos"][v].attrs["path"] for v in f["videos"]})
            assert f.attrs["shard_scheme"] == partition.SCHEME
        assert rep["videos"] == rep["prepared"] == len(held[-1])
    assert sorted(map(len, held)) == [0, 0, 1, 1, 1, 1, 1, 1]
    train, classes = load_split(ds, "train")
    test, _ = load_split(ds, "test")
    assert set().union(*held) == {r for r, _ in train + test}
    assert load_split(shards, "test") == (test, classes)
    reader = ShardedCacheReader(shards)
    for rel, _ in train + test:
        assert reader.has(rel) and reader.num_gops(rel) >= 1, rel
    assert not reader.has("move_up/none.avi")


def test_a_shard_of_the_old_assignment_is_refused_clearly(ds, tmp_path):
    """A shard cache written with the crc32 assignment (no scheme recorded): resuming it
    with --shard is refused naming the file, and a folder mixing the two is refused."""
    from hybrid.data.sources import load_split
    from hybrid.data.splits import SplitError

    shards = tmp_path / "shards"
    shards.mkdir()
    for k in (1, 2):
        assert _prepare(ds, shards / f"s{k}.h5", "--shard", f"{k}/2").exit_code == 0
    with h5py.File(shards / "s1.h5", "a") as f:
        del f.attrs["shard_scheme"]  # what an earlier version wrote
    res = _prepare(ds, shards / "s1.h5", "--shard", "1/2")
    assert res.exit_code == 1 and "s1.h5" in res.output and "crc32" in res.output, res.output
    assert "Traceback" not in res.output
    with pytest.raises(SplitError, match="different assignments"):
        load_split(shards, "test")
