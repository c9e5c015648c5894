"""Splits, transforms, the HDF5 cache (``hybrid prepare``) and the torch Dataset."""
import json
import random
import shutil

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from deploy.artifact.inputs import decode, decode_sample
from hybrid.cli import main
from hybrid.data.arrayfile import CacheReader
from hybrid.data.cache import source_stamp
from hybrid.data.dataset import CompressedVideoDataset
from hybrid.data.sources import detect_layout, load_split
from hybrid.data.splits import SplitError
from hybrid.data.transforms import (
    CropConfig,
    Normalization,
    apply_box,
    crop_box,
    hflip_mv,
    sample_segments,
)
from hybrid.video.extract import FormatError, extract_arrays
from hybrid.video.reader import P_PER_GOP
from hybrid.video.synth import SynthConfig, make_dataset

SIZE = (64, 48)


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    """A UCF-style synthetic dataset: 3 classes x 4 videos of 24 frames (2 GOPs) + one
    with a short final GOP."""
    root = tmp_path_factory.mktemp("ucf")
    make_dataset(root, classes=3, per_class=4, seed=1, cfg=SynthConfig(size=SIZE, frames=24))
    from hybrid.video.synth import render_video
    from hybrid.video.transcode import EncodeConfig, encode_mpeg4

    encode_mpeg4(render_video(2, 5, SynthConfig(size=SIZE, frames=30)),
                 root / "zoom_in" / "zoom_in_short.avi", EncodeConfig(size=SIZE))
    with open(root / "testlist01.txt", "a") as f:
        f.write("zoom_in/zoom_in_short.avi\n")
    return root


@pytest.fixture(scope="module")
def cache(ucf, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "c.h5"
    res = CliRunner().invoke(main, ["prepare", "--store", "arrays", str(ucf), "-o", str(out),
                                    "--size", "64x48",
                                    "--workers", "2", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["prepared"] == 13 and summary["failed"] == []
    return out


@pytest.fixture(scope="module")
def vcache(ucf, tmp_path_factory):
    out = tmp_path_factory.mktemp("vcache") / "v"
    res = CliRunner().invoke(main, ["prepare", str(ucf), "-o", str(out), "--size",
                                    "64x48", "--workers", "2", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["prepared"] == 13 and summary["failed"] == []
    return out


def test_ucf_split(ucf):
    assert detect_layout(ucf) == "ucf101"
    train, classes = load_split(ucf, "train")
    test, _ = load_split(ucf, "test")
    assert classes == ["move_up", "move_down", "zoom_in"]
    assert len(train) == 9 and len(test) == 4
    assert ("move_down/move_down_003.avi", 1) in test
    assert not {r for r, _ in train} & {r for r, _ in test}
    with pytest.raises(SplitError, match="testlist02"):
        load_split(ucf, "test", fold=2)


def test_hmdb_split(tmp_path):
    for cls in ("wave", "clap"):
        (tmp_path / cls).mkdir()
        (tmp_path / f"{cls}_test_split1.txt").write_text(
            f"{cls}_a.avi 1\n{cls}_b.avi 2\n{cls}_c.avi 0\n")
    assert detect_layout(tmp_path) == "hmdb51"
    train, classes = load_split(tmp_path, "train")
    test, _ = load_split(tmp_path, "test")
    assert classes == ["clap", "wave"]
    assert train == [("clap/clap_a.avi", 0), ("wave/wave_a.avi", 1)]
    assert test == [("clap/clap_b.avi", 0), ("wave/wave_b.avi", 1)]


def test_folder_split(tmp_path):
    for cls in ("b", "a"):
        (tmp_path / cls).mkdir()
        for i in range(4):
            (tmp_path / cls / f"{i}.mp4").write_bytes(b"x")
    (tmp_path / "a" / "notes.txt").write_text("not a video")
    train, classes = load_split(tmp_path, "train")
    test, _ = load_split(tmp_path, "test")
    assert classes == ["a", "b"] and len(train) == 6 and test == [("a/3.mp4", 0), ("b/3.mp4", 1)]
    with pytest.raises(SplitError, match="no class folders"):
        load_split(tmp_path / "a", "train")


def test_coviar_normalization_values():
    n = Normalization()
    mv = np.array([0.0, 20.0, -20.0, 100.0, 3.9])
    # CoViAR: clip(trunc(mv * 127.5 / 20) + 128, 0, 255) / 255 - 0.5
    expect = np.array([128, 255, 1, 255, 24 + 128]) / 255 - 0.5
    np.testing.assert_allclose(n.mv(mv), expect, atol=1e-6)
    np.testing.assert_allclose(n.residual(np.zeros((1, 3)))[0],
                               (128 / 255 - 0.5) / np.array(n.std), rtol=1e-4)
    np.testing.assert_allclose(n.iframe(np.full((1, 3), 255, np.uint8))[0],
                               (1 - np.array(n.mean)) / np.array(n.std), rtol=1e-6)


@pytest.mark.parametrize("bound", [20.0, 7.0, 1000.0])
def test_int16_codes_by_table_equal_the_formula(bound):
    """The reader's int16 MV and residual become codes through a table; every int16
    value, in any shape, gives the float formula's code (by hand: 20 px -> 255)."""
    n = Normalization(mv_bound=bound)
    v = np.arange(-32768, 32768).astype(np.int16).reshape(8, -1, 2)[:, ::3]  # strided
    assert np.array_equal(n.mv_codes(v), n.mv_codes(v.astype(np.float32)))
    assert np.array_equal(n.residual_codes(v), n.residual_codes(v.astype(np.float32)))
    hand = np.array([0, 20, -20, 3, -1, 300, -300], np.int16)
    if bound == 20.0:
        assert n.mv_codes(hand).tolist() == [128, 255, 1, 147, 122, 255, 0]
    assert n.residual_codes(hand).tolist() == [128, 148, 108, 131, 127, 255, 0]


def test_hflip_negates_mv_x():
    mv = np.zeros((4, 6, 2), np.float32)
    mv[1, 0] = (3, 2)
    f = hflip_mv(mv)
    assert f[1, 5].tolist() == [-3, 2] and f[1, 0].tolist() == [0, 0]


@pytest.mark.parametrize("n,s", [(10, 3), (2, 3), (1, 4), (3, 3)])
def test_segment_sampling(n, s):
    rng = random.Random(0)
    ev = sample_segments(n, s, train=False)
    assert len(ev) == s and ev == sorted(ev) and all(0 <= i < n for i in ev)
    for _ in range(20):
        tr = sample_segments(n, s, train=True, rng=rng)
        assert len(tr) == s and tr == sorted(tr) and all(0 <= i < n for i in tr)
    if n >= s:
        assert len(set(ev)) == s


def pad_p_frames(a: np.ndarray, p: int, zero: int = 0) -> np.ndarray:
    """The reference: (11, ...) slots of which the first ``p`` are real -> repeat slot
    p-1 after them; no real slot: all ``zero`` (the code of no motion / no residual)."""
    if 0 < p < a.shape[0]:
        a = a.copy()
        a[p:] = a[p - 1]
    elif p == 0:
        a = np.full_like(a, zero)
    return a


def test_pad_short_gop_repeats_last():
    a = np.arange(11 * 2, dtype=np.float32).reshape(11, 2)
    p = pad_p_frames(a, 4)
    assert (p[4:] == a[3]).all() and (p[:4] == a[:4]).all()
    assert (pad_p_frames(a, 0) == 0).all() and (pad_p_frames(a, 11) == a).all()


@pytest.mark.parametrize("dtype", [np.int16, np.uint8])
def test_crop_codes_is_crop_then_codes_pad_and_transpose(dtype):
    """The Dataset's one-pass kernel equals numpy's crop, whole-array codes
    (Normalization), padding of short GOPs and transpose, at odd sizes and offsets,
    with GOPs of 0, 1, 4 and 11 P-frames; nothing outside the crop corner is written."""
    from hybrid.data.codes_kernel import crop_codes
    from hybrid.data.dataset import IDENTITY

    rng = np.random.default_rng(3)
    s, h, w, m = 4, 13, 17, 9
    p = np.array([0, 1, 4, 11], np.int64)
    norm = Normalization(mv_bound=7.0)
    for c, codes, table in ((2, norm.mv_codes, norm.tables()[0]),
                            (3, norm.residual_codes, norm.tables()[1])):
        if dtype == np.int16:
            x = rng.integers(-32768, 32768, (s, 11, h, w, c)).astype(np.int16)
            x[:, :, :4] = rng.integers(-300, 300, (s, 11, 4, w, c))  # the common range
            src, want_codes, tab = x.view(np.uint16), codes(x), table
        else:
            x = rng.integers(0, 256, (s, 11, h, w, c)).astype(np.uint8)
            src, want_codes, tab = x, x, IDENTITY
        for top, left, ch, cw in ((0, 0, 9, 9), (3, 5, 7, 8), (4, 8, 9, 9), (12, 16, 1, 1)):
            out = np.full((s, 11, c, m, m), 7, np.uint8)
            crop_codes(src, p, tab, top, left, ch, cw, 128, out)
            for k in range(s):
                want = pad_p_frames(want_codes[k, :, top:top + ch, left:left + cw], int(p[k]),
                                    128).transpose(0, 3, 1, 2)
                assert np.array_equal(out[k, :, :, :ch, :cw], want), (c, k, top, left)
            assert (out[..., ch:, :] == 7).all() and (out[..., :, cw:] == 7).all()


def test_cache_roundtrip_matches_extraction(ucf, cache):
    reader = CacheReader(cache)
    direct = Normalization().codes(extract_arrays(ucf / "move_down/move_down_001.avi"))
    got = reader.gops("move_down/move_down_001.avi", [1, 0, 1])
    for k in ("iframe", "mv", "residual", "p_frames"):
        np.testing.assert_array_equal(got[k], direct[k][[1, 0, 1]], err_msg=k)
    assert got["mv"].dtype == got["residual"].dtype == np.uint8
    assert got["mv"].min() < 128 < got["mv"].max()  # the codes hold motion both ways
    assert reader.num_gops("zoom_in/zoom_in_short.avi") == 3
    assert reader.gops("zoom_in/zoom_in_short.avi", [2])["p_frames"].tolist() == [5]
    items, classes = load_split(cache, "test")
    assert items == load_split(ucf, "test")[0] and classes[2] == "zoom_in"


def test_dataset_from_cache_equals_from_videos(ucf, cache):
    items, _ = load_split(ucf, "test")
    kw = dict(segments=3, train=False, crop=CropConfig(size=32), video_size=SIZE)
    a = CompressedVideoDataset(cache, items, **kw)
    b = CompressedVideoDataset(ucf, items, **kw)
    for i in (0, len(items) - 1):  # the last is the short video
        x, y = a[i], b[i]
        m = int(48 * 0.875)  # the eval crop, not yet resized
        assert x["iframe"].shape == (3, 3, m, m) and x["mv"].shape == (3, 11, 2, m, m)
        assert x["iframe"].dtype == x["mv"].dtype == x["residual"].dtype == torch.uint8
        assert x["box"].tolist() == [m, m, 0, 32] and x["label"].dtype == torch.int64
        for k in x:
            assert torch.equal(x[k], y[k]), k
        x = decode_sample(x)
        assert x["iframe"].shape == (3, 3, 32, 32) and x["mv"].shape == (3, 11, 2, 32, 32)
        assert x["residual"].shape == (3, 11, 3, 32, 32) and "box" not in x
        for k in ("iframe", "mv", "residual"):
            assert x[k].dtype == torch.float32 and torch.isfinite(x[k]).all()


def test_dataset_train_flip_negates_mv_x(cache):
    items, _ = load_split(cache, "train")
    crop = CropConfig(size=48, scales=(1.0,))  # full-height crop: only the place varies
    ds = CompressedVideoDataset(cache, items[:1], segments=1, train=True, crop=crop, seed=0)
    ds_noflip = CompressedVideoDataset(cache, items[:1], segments=1, train=True,
                                       crop=CropConfig(size=48, scales=(1.0,), flip=False))
    seen = set()
    for k in range(30):  # same seed: same GOP and crop place; only the flip differs
        ds.rng.seed(k)
        state = ds.rng.getstate()
        x = decode_sample(ds[0])
        ds_noflip.rng.setstate(state)
        y = decode_sample(ds_noflip[0])
        flipped = not torch.equal(x["iframe"], y["iframe"])
        seen.add(flipped)
        if flipped:
            mx, my = x["mv"][0, :, 0], y["mv"][0, :, 0]
            # normalised MV x is centred at 0 (value 128 -> 0.002); flip mirrors and negates
            assert torch.allclose(mx, -my.flip(-1), atol=1e-6)
            assert torch.allclose(x["mv"][0, :, 1], y["mv"][0, :, 1].flip(-1), atol=1e-6)
            assert torch.allclose(x["iframe"], y["iframe"].flip(-1))
    assert seen == {True, False}


def test_prepare_resumes_and_skips_bad_video(ucf, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(ucf, root)
    bad = root / "move_down" / "move_down_000.avi"
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    out = tmp_path / "c.h5"
    args = ["prepare", "--store", "arrays", str(root), "-o", str(out), "--size", "64x48",
            "--workers", "1",
            "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "Traceback" not in res.output
    summary = json.loads(res.stdout)
    assert summary["prepared"] == 12 and [f["path"] for f in summary["failed"]] == [
        "move_down/move_down_000.avi"]
    assert str(bad) in summary["failed"][0]["error"]
    # simulate a killed run: one video half-written, one missing
    with h5py.File(out, "a") as f:
        f["videos"].move("zoom_in|zoom_in_001.avi", "zoom_in|zoom_in_001.avi.part")
        del f["videos"]["move_up|move_up_002.avi"]
    bad.write_bytes(data)  # repaired
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["prepared"] == 3 and summary["already_done"] == 10
    with h5py.File(out, "r") as f:
        assert len(f["videos"]) == 13 and not any(k.endswith(".part") for k in f["videos"])


def test_prepare_rejects_other_version_and_mode(ucf, tmp_path):
    out = tmp_path / "c.h5"
    with h5py.File(out, "w") as f:
        f.attrs.update({"format": "hybrid-compressed-video", "version": 7})
    res = CliRunner().invoke(main, ["prepare", "--store", "arrays", str(ucf), "-o", str(out),
                                    "--size", "64x48"])
    assert res.exit_code == 1 and "version 7" in res.output and "Traceback" not in res.output


def test_version_1_cache_is_refused_naming_the_file(tmp_path):
    """A cache of before the uint8 codes (float16 MV, int16 residuals) is refused by
    the reader and by prepare, naming the file and the way out."""
    old = tmp_path / "old.h5"
    with h5py.File(old, "w") as f:
        f.attrs.update({"format": "hybrid-compressed-video", "version": 1, "kind": "cache"})
    with pytest.raises(FormatError, match=f"{old}: format version 1.*reads version 2.*prepare"):
        CacheReader(old)
    with pytest.raises(FormatError, match="old.h5"):
        CompressedVideoDataset(old, [("a.avi", 0)])


def _today(arrays: dict, segments: int, train: bool, crop: CropConfig, seed: int) -> dict:
    """main's __getitem__ before the uint8 codes, from raw extracted arrays: float
    normalisation in numpy on the full frames, then crop, resize and flip in torch."""
    rng = random.Random(seed)
    idx = sample_segments(len(arrays["p_frames"]), segments, train, rng)
    a = {k: v[idx] for k, v in arrays.items()}
    norm, s = Normalization(), segments
    mv = np.stack([pad_p_frames(a["mv"][k], int(a["p_frames"][k])) for k in range(s)])
    res = np.stack([pad_p_frames(a["residual"][k], int(a["p_frames"][k])) for k in range(s)])
    h, w = a["iframe"].shape[1:3]
    top, left, ch, cw, flip = crop_box(h, w, crop, train, rng)
    box, c, t = (top, left, ch, cw, flip), crop.size, s * P_PER_GOP

    def chw(x, n):
        return torch.from_numpy(np.ascontiguousarray(x.reshape((n,) + x.shape[-3:])
                                                     .transpose(0, 3, 1, 2)))

    return {"iframe": apply_box(chw(norm.iframe(a["iframe"]), s), box, c),
            "mv": apply_box(chw(norm.mv(mv), t), box, c, is_mv=True).reshape(s, 11, 2, c, c),
            "residual": apply_box(chw(norm.residual(res), t), box, c).reshape(s, 11, 3, c, c)}


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("crop", [32, 48, 20])
def test_model_inputs_equal_through_every_path_and_to_today(ucf, cache, vcache, train, crop):
    """What the model receives (codes from the loader, decoded by deploy.artifact.inputs.decode, as
    training does with a batch) equals, within float tolerance, today's float pipeline
    run on the video's own extracted arrays (every GOP decoded in sequence), through the
    array cache, the video cache and the original video (both seeking to the sampled
    GOPs; the original also extracted whole, as a video not in form is) alike, for
    several seeds (crop places, scales, flips) and the short video."""
    items, _ = load_split(ucf, "test")
    items = [items[0], items[-1]]  # the last is the short video (a 5-P-frame final GOP)
    cfg = CropConfig(size=crop)
    kw = dict(segments=3, train=train, crop=cfg, video_size=SIZE)
    paths = {"cache": CompressedVideoDataset(cache, items, **kw),
             "video cache": CompressedVideoDataset(vcache, items, **kw),
             "video": CompressedVideoDataset(ucf, items, **kw),
             "video, whole": CompressedVideoDataset(ucf, items, **kw)}
    for rel, _ in items:  # originals in form are sought; "whole" extracts every GOP
        assert paths["video"]._seekable(ucf / rel) is not None
        paths["video, whole"]._gops[str(ucf / rel), source_stamp(ucf / rel)] = None
    flips = set()
    for i, (rel, _) in enumerate(items):
        raw = extract_arrays(ucf / rel)
        for seed in (0, 2, 4, 5):  # 4, 5: flipped in training; 2: a non-square crop
            want = _today(raw, 3, train, cfg, seed)
            got = {}
            for name, ds in paths.items():
                ds.rng.seed(seed)
                got[name] = ds[i]
                flips.add(bool(got[name]["box"][2]))
            batch = decode(torch.utils.data.default_collate(list(got.values())))
            for k in ("iframe", "mv", "residual"):
                for j, name in enumerate(paths):
                    torch.testing.assert_close(batch[k][j], want[k], atol=2e-6, rtol=1e-5,
                                               msg=f"{name} {k} {rel} seed {seed}")
    assert flips == ({False, True} if train else {False})

def test_folder_dataset_resizes_exactly_as_prepare(tmp_path):
    """One video read straight from a dataset folder and through a `hybrid prepare` cache,
    both at their defaults, gives identical input tensors: the folder path resizes to
    prepare's 340x256 (the video here is 96x64), in evaluation and in training alike."""
    from hybrid.data.cache import PrepareConfig
    from hybrid.video.transcode import DEFAULT_SIZE

    root, cache = tmp_path / "ds", tmp_path / "c.h5"
    make_dataset(root, classes=2, per_class=2, seed=3, cfg=SynthConfig(size=(96, 64), frames=30))
    res = CliRunner().invoke(main, ["prepare", "--store", "arrays", str(root), "-o", str(cache),
                                    "--workers", "1"])
    assert res.exit_code == 0, res.output
    items, _ = load_split(root, "train")
    assert len(items) == 2
    for train in (False, True):
        kw = dict(segments=3, train=train, crop=CropConfig(size=40), seed=5)
        a, b = CompressedVideoDataset(cache, items, **kw), CompressedVideoDataset(root, items, **kw)
        for i in range(len(items)):
            x, y = a[i], b[i]
            assert decode_sample(x)["iframe"].shape == (3, 3, 40, 40)
            for k in x:
                assert torch.equal(x[k], y[k]), (train, i, k)
    arrays, _ = b.load(items[0][0], 1)
    assert arrays["iframe"].shape[1:3] == (256, 340)  # (H, W): resized, not the video's own
    # one default frame size: prepare's --size, train's, eval's and predict's --video-size,
    # PrepareConfig and the dataset
    defaults = {(c, p.name): p.default for c in ("prepare", "train", "eval", "predict")
                for p in main.commands[c].params}
    assert defaults["prepare", "size"] == "340x256"
    # train: the videos' own size (never upscaled); eval and predict: the checkpoint's
    # recorded training size, else the same 340x256
    for c in ("train", "eval", "predict"):
        assert defaults[c, "video_size"] is None
    for c in ("eval", "predict"):
        assert "340x256" in next(p.help for p in main.commands[c].params
                                 if p.name == "video_size")
    assert tuple(DEFAULT_SIZE) == PrepareConfig().size == (340, 256)


def test_one_video_ignores_what_else_its_folder_holds(ucf, tmp_path):
    """A video read on its own (predict, explain, run, chip) beside files that make its
    folder look like a cache or a video cache is still read as that one video."""
    import shutil

    src = ucf / "move_up"
    video = next(src.glob("*.avi"))
    shutil.copy(video, tmp_path / video.name)
    (tmp_path / "videocache.json").write_text("{}")  # would make the folder a video cache
    alone = CompressedVideoDataset.one_video(video, 2, crop=32, video_size=SIZE)[0]
    beside = CompressedVideoDataset.one_video(tmp_path / video.name, 2, crop=32,
                                              video_size=SIZE)[0]
    for k in ("iframe", "mv", "residual"):
        assert np.array_equal(alone[k], beside[k]), k
