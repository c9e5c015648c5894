"""Kinetics and Something-Something v2 layouts (detected, split, missing videos),
sharded preparation and a folder of shard caches read as one dataset; small layouts
made in the test from `hybrid synth` videos (H.264 MP4 for Kinetics, VP9 WebM for
SSv2, as those sets come)."""
import csv
import json

import h5py
import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.data.partition import assign_shards
from hybrid.data.sources import detect_layout, load_split
from hybrid.data.splits import SplitError, missing_videos
from hybrid.video.synth import SynthConfig, make_dataset

NAMES = {"move_up": "move up", "move_down": 'move "down", slowly', "zoom_in": "zoom in"}
TEMPLATES = {"move_up": "Moving [something] up", "move_down": "Moving [something] down",
             "zoom_in": "Zooming in on [something]"}


def reencode(src, dst, codec):
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        st = out.add_stream(codec, rate=25)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        if codec == "libx264":
            st.codec_context.options = {"bf": "2", "preset": "ultrafast"}
        else:
            st.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
        for t, f in enumerate(inp.decode(video=0)):
            g = av.VideoFrame.from_ndarray(f.to_ndarray(format="rgb24"), format="rgb24")
            g.pts = t
            out.mux(st.encode(g))
        out.mux(st.encode(None))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    make_dataset(root, classes=3, per_class=4, seed=2, cfg=SynthConfig(size=(64, 48),
                                                                       frames=24))
    return root, {s: load_split(root, s) for s in ("train", "test")}


@pytest.fixture(scope="module")
def kinetics(synth, tmp_path_factory):
    """annotations/{train,val}.csv + {split}/{id}_{start:06d}_{end:06d}.mp4, one listed
    video missing from each split."""
    src, splits = synth
    root = tmp_path_factory.mktemp("kinetics")
    (root / "annotations").mkdir()
    for split, folder in (("train", "train"), ("test", "val")):
        (root / folder).mkdir()
        items, classes = splits[split]
        rows = []
        for i, (rel, label) in enumerate(items + [items[0]]):
            yid, start = f"-x_{split[:2]}{i:04d}", 10 * i
            rows.append([NAMES[classes[label]], yid, start, start + 10, folder])
            if i < len(items):  # the last one is listed but not downloaded
                reencode(src / rel, root / folder / f"{yid}_{start:06d}_{start + 10:06d}.mp4",
                         "libx264")
        with open(root / "annotations" / f"{folder}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def ssv2(synth, tmp_path_factory):
    src, splits = synth
    root = tmp_path_factory.mktemp("ssv2")
    vids = root / "20bn-something-something-v2"
    vids.mkdir()
    classes = splits["train"][1]
    labels = {TEMPLATES[c].replace("[", "").replace("]", ""): str(i)
              for i, c in enumerate(classes)}
    (root / "labels.json").write_text(json.dumps(labels))
    n = 1000
    for split, name in (("train", "train.json"), ("test", "validation.json")):
        entries = []
        for rel, label in splits[split][0]:
            n += 1
            entries.append({"id": str(n), "label": "a thing", "template":
                            TEMPLATES[classes[label]], "placeholders": ["thing"]})
            reencode(src / rel, vids / f"{n}.webm", "libvpx-vp9")
        (root / name).write_text(json.dumps(entries))
    return root


def test_kinetics_layout(kinetics, synth):
    _, splits = synth
    assert detect_layout(kinetics) == "kinetics"
    train, classes = load_split(kinetics, "train")
    test, _ = load_split(kinetics, "test")
    assert classes == sorted(NAMES.values())  # the sorted labels of train.csv
    assert len(train) == len(splits["train"][0]) and len(test) == len(splits["test"][0])
    assert all((kinetics / rel).is_file() for rel, _ in train + test)
    assert train[0][0].startswith("train/-x_tr0000_000000_000010")
    assert {classes[lab] for _, lab in test} <= set(NAMES.values())
    missing = missing_videos(kinetics)
    assert len(missing) == 2 and all(not (kinetics / m).exists() for m in missing)


def test_kinetics_bad_annotations_name_the_file(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.csv").write_text("label,youtube_id\nx,abc\n")
    with pytest.raises(SplitError, match=r"train\.csv: no column\(s\) time_start"):
        load_split(tmp_path, "train")


def test_ssv2_layout(ssv2, synth):
    _, splits = synth
    assert detect_layout(ssv2) == "ssv2"
    train, classes = load_split(ssv2, "train")
    test, _ = load_split(ssv2, "test")
    assert classes == [TEMPLATES[c].replace("[", "").replace("]", "")
                       for c in splits["train"][1]]  # ordered by id
    assert [lab for _, lab in train] == [lab for _, lab in splits["train"][0]]
    assert len(test) == len(splits["test"][0]) and missing_videos(ssv2) == []
    assert train[0][0] == "20bn-something-something-v2/1001.webm"


def test_ssv2_unknown_template_names_the_file(ssv2, tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"Moving something up": "0"}))
    (tmp_path / "train.json").write_text(json.dumps([{"id": "7", "template": "Poking [x]"}]))
    with pytest.raises(SplitError, match=r"train\.json: entry 0 \(id 7\): class 'Poking x'"):
        load_split(tmp_path, "train")


def _prepare(data, out, *extra):
    res = CliRunner().invoke(main, ["prepare", "--store", "arrays", str(data), "-o", str(out),
                                    "--size", "64x48",
                                    "--workers", "2", "--json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _train(data, run):
    res = CliRunner().invoke(main, ["train", str(data), "-o", str(run), "--epochs", "1",
                                    "--segments", "1", "--size", "32", "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    return run / "checkpoint.pt"


def test_kinetics_shards_prepare_train_and_evaluate_as_one(kinetics, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    parts = [_prepare(kinetics, shards / f"k{k}.h5", "--shard", f"{k}/2") for k in (1, 2)]
    train, classes = load_split(kinetics, "train")
    test, _ = load_split(kinetics, "test")
    everything = {rel for rel, _ in train + test}
    held = []
    for k, rep in enumerate(parts, 1):
        with h5py.File(rep["cache"], "r") as f:
            vids = {f["videos"][v].attrs["path"] for v in f["videos"]}
            assert [int(v) for v in f.attrs["shard"]] == [k, 2]
        part = assign_shards(everything | set(missing_videos(kinetics)), 2)
        assert vids and all(part[rel] == k for rel in vids)
        assert rep["videos"] == rep["prepared"] == len(vids) and rep["failed"] == []
        held.append(vids)
    assert not held[0] & held[1] and held[0] | held[1] == everything
    # the missing videos: counted once overall, each shard listing its own
    assert sum(r["missing"] for r in parts) == 2
    listed = [line for r in parts if r["missing_list"]
              for line in open(r["missing_list"]).read().split()]
    assert sorted(listed) == missing_videos(kinetics)
    assert detect_layout(shards) == "shards"
    assert load_split(shards, "test") == (test, classes)
    ck = _train(shards, tmp_path / "run")  # a folder of shards trains as one dataset
    res = CliRunner().invoke(main, ["eval", str(ck), str(shards), "--views", "1x1", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["videos"] == len(test) and not rep["skipped"]  # every video once
    assert sum(sum(row) for row in rep["confusion"]) == len(test)
    res = CliRunner().invoke(main, ["profile", str(ck), str(shards), "--json"])
    assert res.exit_code == 0, res.output  # and profiles as one


def test_shard_folder_checks_its_parts(kinetics, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    _prepare(kinetics, shards / "k1.h5", "--shard", "1/3")
    with pytest.raises(SplitError, match="shard.* 2/3, 3/3 missing"):
        load_split(shards, "train")
    res = CliRunner().invoke(main, ["prepare", "--store", "arrays", str(kinetics), "-o",
                                    str(shards / "k1.h5"),
                                    "--size", "64x48", "--shard", "2/3"])
    assert res.exit_code == 1 and "shard 1/3, asked for shard 2/3" in res.output


def test_ssv2_prepares_and_trains(ssv2, tmp_path):
    rep = _prepare(ssv2, tmp_path / "c.h5")
    assert rep["prepared"] == rep["videos"] == 12 and rep["missing"] == 0
    _train(tmp_path / "c.h5", tmp_path / "run")
