"""Reading videos by GOP (hybrid.video.seek) and the video cache (``hybrid prepare``'s
default store): seeking gives exactly the GOPs of a sequential decode, a video not in
the reader's form is transcoded once by prepare, and prepare is kill-safe and resumes."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.data.dataset import CompressedVideoDataset
from hybrid.data.sources import detect_layout, load_split
from hybrid.data.videocache import TMP, VideoCacheReader, index_path, video_path
from hybrid.video.extract import extract_arrays
from hybrid.video.seek import gop_index, read_gops_at
from hybrid.video.synth import SynthConfig, make_dataset, render_video
from hybrid.video.transcode import EncodeConfig, encode_mpeg4, transcode

SIZE = (80, 56)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """2 classes x 3 videos of 53 frames (4 GOPs + a 5-frame one) at 80x56, and a
    GOP-30 MPEG-4 video at 96x64 (not the reader's form: prepare transcodes it)."""
    root = tmp_path_factory.mktemp("paths")
    make_dataset(root, classes=2, per_class=3, seed=7, cfg=SynthConfig(size=SIZE, frames=53))
    odd = root / "move_up" / "move_up_gop30.mp4"
    encode_mpeg4(render_video(1, 11, SynthConfig(size=(96, 64), frames=40)), odd,
                 EncodeConfig(size=(96, 64), gop=30))
    with open(root / "trainlist01.txt", "a") as f:
        f.write("move_up/move_up_gop30.mp4 1\n")
    return root


@pytest.mark.parametrize("coviar", [True, False])
@pytest.mark.parametrize("idx", [[0], [4, 0, 2, 2], [3, 4, 1]])
def test_seeking_gives_the_gops_of_a_sequential_decode(data, idx, coviar):
    for video in sorted(data.glob("*/*.avi"))[:2]:
        full = extract_arrays(video, accumulate=True, coviar=coviar)
        starts = gop_index(video)
        assert len(starts) == len(full["p_frames"]) == 5
        got = read_gops_at(video, starts, idx, accumulate=True, coviar=coviar)
        for k, v in full.items():
            assert got[k].dtype == v.dtype and np.array_equal(got[k], v[idx]), (video, k)


def _prepare(root, out, *extra):
    return CliRunner().invoke(main, ["prepare", str(root), "-o", str(out),
                                     "--size", f"{SIZE[0]}x{SIZE[1]}", "--workers", "1",
                                     "--json", *extra])


def test_video_cache_is_the_sources_size_and_reads_as_the_folder(data, tmp_path):
    out = tmp_path / "vc"
    res = _prepare(data, out)
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["prepared"] == s["videos"] == 7 and not s["failed"]
    assert detect_layout(out) == "videocache"
    assert load_split(out, "train") == load_split(data, "train")
    assert load_split(out, "test") == load_split(data, "test")
    src = sum(p.stat().st_size for p in data.glob("*/*.*") if p.suffix in (".avi", ".mp4"))
    assert 0.5 * src < s["bytes"] < 2 * src  # about the source's bytes
    # a video in form is copied as is; the GOP-30 one transcoded to the prepare size
    rel = "move_down/move_down_000.avi"
    assert video_path(out, rel).read_bytes() == (data / rel).read_bytes()
    odd = video_path(out, "move_up/move_up_gop30.mp4")
    # names: an AVI keeps its name, others get .avi added; each with its index beside it
    names = sorted(str(q.relative_to(out / "videos")) for q in (out / "videos").rglob("*.*"))
    assert "move_down/move_down_000.avi" in names and "move_down/move_down_000.avi.json" in names
    assert "move_up/move_up_gop30.mp4.avi" in names and len(names) == 14
    assert not any(n.endswith(".avi.avi") or n.endswith(".avi.avi.json") for n in names)
    path, starts = VideoCacheReader(out).entry("move_up/move_up_gop30.mp4")
    assert path == odd and starts == gop_index(odd) and len(starts) == 4  # 40 frames, GOP 12
    # the video cache reads as the folder does (which transcodes the GOP-30 video whole)
    items = load_split(data, "train")[0] + load_split(data, "test")[0]
    for train in (False, True):
        kw = dict(segments=3, train=train, crop=24, video_size=SIZE, seed=11)
        a, b = CompressedVideoDataset(out, items, **kw), CompressedVideoDataset(data, items, **kw)
        for i in range(len(items)):
            x, y = a[i], b[i]
            for k in x:
                assert np.array_equal(x[k], y[k]), (items[i], k)


def test_video_cache_prepare_is_kill_safe_and_resumes(data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data, root)
    bad = root / "move_down" / "move_down_001.avi"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 3])
    out = tmp_path / "vc"
    res = _prepare(root, out)
    assert res.exit_code == 1 and "move_down_001.avi" in res.output
    s = json.loads(res.stdout)
    assert s["prepared"] == 6 and [f["path"] for f in s["failed"]] == [
        "move_down/move_down_001.avi"]
    assert not list(out.rglob("*" + TMP))
    # a killed run: one video half-written (its temporary file), one written but not
    # indexed (killed between the rename and the index), one changed since
    rel_a, rel_b = "move_up/move_up_000.avi", "move_up/move_up_001.avi"
    half = video_path(out, rel_a)
    os.replace(half, str(half) + TMP)
    index_path(out, rel_a).unlink()
    index_path(out, rel_b).unlink()
    changed = root / "move_down" / "move_down_002.avi"
    changed.write_bytes(changed.read_bytes())  # same bytes, newer mtime
    os.utime(changed, ns=(os.stat(changed).st_atime_ns, os.stat(changed).st_mtime_ns + 10**9))
    bad.write_bytes(good)  # repaired
    res = _prepare(root, out)
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["prepared"] == 4 and s["already_done"] == 3 and s["changed"] == 1
    assert not list(out.rglob("*" + TMP))
    reader = VideoCacheReader(out)
    for rel, _ in load_split(out, "train")[0] + load_split(out, "test")[0]:
        path, starts = reader.entry(rel)
        assert starts == gop_index(path)
    # another dataset folder or size is refused, naming the folder
    res = _prepare(data, out)
    assert res.exit_code == 1 and str(out) in res.output and "another folder" in res.output
    res = CliRunner().invoke(main, ["prepare", str(root), "-o", str(out),
                                    "--size", "64x48"])
    assert res.exit_code == 1 and "another folder" in res.output


def test_a_video_missing_from_the_video_cache_is_reported_and_skipped(data, tmp_path):
    out = tmp_path / "vc"
    assert _prepare(data, out).exit_code == 0
    rel = "move_up/move_up_002.avi"
    index_path(out, rel).unlink()
    items, _ = load_split(out, "train")
    ds = CompressedVideoDataset(out, items, segments=2, train=False, crop=24)
    k = [r for r, _ in items].index(rel) if rel in dict(items) else None
    if k is None:
        items, _ = load_split(out, "test")
        ds = CompressedVideoDataset(out, items, segments=2, train=False, crop=24)
        k = [r for r, _ in items].index(rel)
    with pytest.raises(ValueError, match="move_up_002.avi.*prepare"):
        ds[k]


def test_prepare_needs_a_store_to_write(data):
    res = CliRunner().invoke(main, ["prepare", str(data)])
    assert res.exit_code == 2 and "'-o' / '--out'" in res.output


def test_an_h5_name_under_the_default_store_is_one_line_naming_the_way(data, tmp_path):
    """The default store is the video cache (a folder): `-o NAME.h5` is refused in one
    line naming the file and --store arrays, nothing written; with --store arrays the
    same name is an array cache."""
    for name in ("c.h5", "C.HDF5"):
        out = tmp_path / name
        res = CliRunner().invoke(main, ["prepare", str(data), "-o", str(out), "--size",
                                        f"{SIZE[0]}x{SIZE[1]}", "--workers", "1"])
        assert res.exit_code == 1, res.output
        assert res.output.count("\n") == 1 and res.output.startswith(f"Error: {out}: ")
        assert "--store arrays" in res.output and not out.exists()
        assert not list(tmp_path.iterdir())


def test_transcode_once_equals_transcode_per_read(data, tmp_path):
    """The transcoded video the cache keeps is what the folder path transcodes per read."""
    src = data / "move_up" / "move_up_gop30.mp4"
    a, b = tmp_path / "a.avi", tmp_path / "b.avi"
    transcode(src, a, EncodeConfig(size=SIZE), force=True)
    transcode(src, b, EncodeConfig(size=SIZE), force=True)
    assert a.read_bytes() == b.read_bytes()


def test_video_cache_of_version_1_is_refused_naming_the_fix(data, tmp_path):
    """Version 1 named videos x.avi.avi: its header is refused by readers and prepare,
    naming the file and the way out; two sources that would share a name are refused."""
    out = tmp_path / "old"
    assert _prepare(data, out).exit_code == 0
    head = json.loads((out / "videocache.json").read_text())
    (out / "videocache.json").write_text(json.dumps({**head, "version": 1}))
    for read in (lambda: VideoCacheReader(out), lambda: load_split(out, "train")):
        with pytest.raises(ValueError, match=f"{out}/videocache.json: .*version 1.*"
                                             f"-o NEW_DIR"):
            read()
    res = _prepare(data, out)
    assert res.exit_code == 1 and "version 1" in res.output and "Traceback" not in res.output
    root = tmp_path / "clash"
    shutil.copytree(data, root)
    shutil.copy(root / "move_up" / "move_up_gop30.mp4", root / "move_up" / "move_up_gop30.mp4.avi")
    with open(root / "trainlist01.txt", "a") as f:
        f.write("move_up/move_up_gop30.mp4.avi 1\n")
    res = _prepare(root, tmp_path / "vc2")
    assert res.exit_code == 1 and "would both be" in res.output, res.output


def test_an_array_cache_from_a_video_cache_transcodes_each_video_once(data, tmp_path,
                                                                     monkeypatch):
    """`prepare VC --store arrays -o C` (VC a video cache): the array cache extracts the
    video cache's copies, so a video not in form (the GOP-30 one) is transcoded once
    over both stores; it equals one prepared from the sources alone, records the dataset
    folder, and a video cache at another size is refused naming it."""
    import h5py

    import hybrid.video.transcode as tc

    real, calls = tc.transcode, []

    def counted(src, dst, cfg, force=False):  # as prepare calls it
        if force or not tc.is_coviar_form(src, cfg.size, cfg.gop):
            calls.append(str(src))  # a real re-encode (not a copy)
        return real(src, dst, cfg, force)

    monkeypatch.setattr(tc, "transcode", counted)
    both, vc = tmp_path / "both.h5", tmp_path / "vc"
    assert _prepare(data, vc).exit_code == 0
    res = CliRunner().invoke(main, ["prepare", str(vc), "--store", "arrays", "-o", str(both),
                                    "--size", f"{SIZE[0]}x{SIZE[1]}", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert calls == [str(data / "move_up" / "move_up_gop30.mp4")]
    calls.clear()
    alone = tmp_path / "alone.h5"
    res = CliRunner().invoke(main, ["prepare", "--store", "arrays", str(data), "-o",
                                    str(alone), "--size", f"{SIZE[0]}x{SIZE[1]}", "--workers",
                                    "1"])
    assert res.exit_code == 0, res.output
    assert calls == [str(data / "move_up" / "move_up_gop30.mp4")]  # alone: its own one
    with h5py.File(both, "r") as a, h5py.File(alone, "r") as b:
        assert a.attrs["root"] == b.attrs["root"] == str(data.resolve())
        assert sorted(a["videos"]) == sorted(b["videos"]) and len(a["videos"]) == 7
        for k in a["videos"]:
            for d in ("iframe", "mv", "residual", "p_frames"):
                assert np.array_equal(a["videos"][k][d][()], b["videos"][k][d][()]), (k, d)
    for store in ("video", "arrays"):  # an array cache is no dataset folder either
        res = CliRunner().invoke(main, ["prepare", str(both), "--store", store, "-o",
                                        str(tmp_path / "x")])
        assert res.exit_code == 1 and f"{both}: a file, not a dataset folder" in res.output
        assert not (tmp_path / "x").exists()
    res = CliRunner().invoke(main, ["prepare", str(vc), "-o", str(tmp_path / "vc2")])
    assert res.exit_code == 1 and f"{vc}: already a video cache" in res.output
    assert "--store arrays" in res.output and not (tmp_path / "vc2").exists()
    res = CliRunner().invoke(main, ["prepare", str(vc), "--store", "arrays", "-o",
                                    str(tmp_path / "x.h5"), "--size", "64x48"])
    assert res.exit_code == 1 and f"{vc}: a video cache at {SIZE[0]}x{SIZE[1]}" in res.output
    assert f"--size {SIZE[0]}x{SIZE[1]}" in res.output and not (tmp_path / "x.h5").exists()


def test_video_cache_prunes_videos_that_left_the_splits(data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data, root)
    out = tmp_path / "vc"
    assert _prepare(root, out).exit_code == 0
    gone = "move_up/move_up_gop30.mp4"
    lines = (root / "trainlist01.txt").read_text().splitlines()
    (root / "trainlist01.txt").write_text("".join(f"{ln}\n" for ln in lines
                                                  if not ln.startswith(gone)))
    res = _prepare(root, out)
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["pruned"] == 1 and s["videos"] == s["already_done"] == 6
    assert not video_path(out, gone).exists() and not index_path(out, gone).exists()
    left = sorted(str(q.relative_to(out / "videos")) for q in (out / "videos").rglob("*.*"))
    assert len(left) == 12 and all("gop30" not in n for n in left)
    res = CliRunner().invoke(main, ["prepare", str(root), "-o", str(out),
                                    "--size", f"{SIZE[0]}x{SIZE[1]}", "--workers", "1"])
    assert res.exit_code == 0 and "0 videos written" in res.output  # nothing more to prune
    assert "deleted" not in res.output


def test_shard_with_a_video_cache_is_a_clear_error(data, tmp_path):
    res = _prepare(data, tmp_path / "vc", "--shard", "1/2")
    assert res.exit_code == 2
    assert "--shard splits the array store (--store arrays) only" in res.output
    assert not (tmp_path / "vc").exists()
    for opt in ("--no-accumulate", "--subpixel", "--no-compress"):
        res = _prepare(data, tmp_path / "vc", opt)
        assert res.exit_code == 2 and "options of the array store" in res.output, opt
        assert not (tmp_path / "vc").exists()


def test_a_clip_from_a_folder_decodes_only_its_sampled_gops(data, monkeypatch):
    """The dataset's folder path (``hybrid run``/``chip``/``predict`` read clips so)
    decodes the sampled GOPs only, counted frame by frame at the decoder, and hands the
    model exactly the inputs of the whole-video path (every GOP extracted, then sampled)."""
    import hybrid.video.seek as seek

    seekers = []

    class Counting(seek.GopSeeker):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seekers.append(self)

    monkeypatch.setattr(seek, "GopSeeker", Counting)
    items = [("move_down/move_down_001.avi", 0), ("move_up/move_up_002.avi", 1)]
    lengths = [12, 12, 12, 12, 5]  # 53 frames: 4 GOPs of 12 and one of 5
    for segments in (1, 3, 8):
        ds = CompressedVideoDataset(data, items, segments, train=False, crop=48,
                                    video_size=SIZE)
        whole = CompressedVideoDataset(data, items, segments, train=False, crop=48,
                                       video_size=SIZE)
        monkeypatch.setattr(whole, "_seekable", lambda path: None)  # extract every GOP
        for i, (rel, _) in enumerate(items):
            seekers.clear()
            got = ds[i]
            (s,) = seekers
            idx = ds.load(rel, segments)[1]
            assert s.decoded == sum(lengths[g] for g in set(idx)), (segments, idx, s.decoded)
            if len(set(idx)) < len(lengths):
                assert s.decoded < sum(lengths)
            want = whole[i]
            for k in ("iframe", "mv", "residual", "box", "label"):
                assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), (k, rel)


def _h264(path, size=(96, 64), frames=36):
    import av

    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = *size, "yuv420p"
        st.codec_context.options = {"crf": "30", "bf": "2", "g": "30"}
        for t, img in enumerate(render_video(2, 3, SynthConfig(size=size, frames=frames))):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = t
            out.mux(st.encode(f))
        out.mux(st.encode(None))
    return path


def test_default_store_of_h264_is_the_video_cache_within_max_ratio(tmp_path):
    """`prepare DATA -o DIR` writes the video cache (the default store). An H.264 source
    transcoded at CoViAR's q 2 is several times its bytes; the video cache takes the
    finest quantiser within --max-ratio (default 2; recorded), 0 keeps q 2, and prepare
    prints the store's size against the source's; --store arrays still writes the HDF5
    array cache, many times that."""
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    src = [_h264(root / "a" / "a.mp4"), _h264(root / "b" / "b.mp4", frames=24)]
    src_bytes = sum(p.stat().st_size for p in src)
    sizes = {}
    for ratio in ("0", "2"):
        out = tmp_path / f"vc{ratio}"
        res = CliRunner().invoke(main, ["prepare", str(root), "-o", str(out),
                                        "--size", "96x64", "--workers", "1"]
                                 + (["--max-ratio", ratio] if ratio == "0" else []))
        assert res.exit_code == 0, res.output
        assert detect_layout(out) == "videocache"
        got = sum(video_path(out, f"{c}/{c}.mp4").stat().st_size for c in "ab")
        assert f"x the source videos' {src_bytes / 1e6:.1f} MB" in res.stdout
        assert f"{got / src_bytes:.2f}x" in res.stdout
        qs = [json.loads(index_path(out, f"{c}/{c}.mp4").read_text())["qscale"] for c in "ab"]
        sizes[ratio] = got, qs
        for c, p in zip("ab", src):
            v = video_path(out, f"{c}/{c}.mp4").stat().st_size
            assert ratio == "0" or v <= 2 * p.stat().st_size, (c, v, p.stat().st_size)
    assert sizes["0"][1] == [2, 2] and sizes["0"][0] > 2 * src_bytes  # q 2 is over 2x here
    assert min(sizes["2"][1]) > 2 and sizes["2"][0] <= 2 * src_bytes
    res = CliRunner().invoke(main, ["prepare", "--store", "arrays", str(root), "-o",
                                    str(tmp_path / "a.h5"), "--size", "96x64", "--workers",
                                    "1", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["source_bytes"] == src_bytes and s["bytes"] == (tmp_path / "a.h5").stat().st_size
    assert detect_layout(tmp_path / "a.h5") == "cache" and s["bytes"] > 2 * src_bytes
