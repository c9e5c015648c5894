"""``hybrid explain`` end to end on the conftest's tiny trained model, its bad-input
errors, and ``examples/stm_denoising.py`` with its noise model."""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.explain import maps as ex

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
VIDEO = "64x48"  # the conftest's trained model's videos


def _video(trained) -> Path:
    data, _ = trained
    return sorted(Path(data).glob("*/*.avi"))[0]


def test_explain_writes_figure_and_maps(trained, tmp_path):
    data, ckpt = trained
    classes = [ln.split()[1] for ln in (Path(data) / "classInd.txt").read_text().splitlines()]
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["explain", str(ckpt), str(_video(trained)), "-o", str(out),
                                  "--class", classes[1], "--segments", "4", "--method",
                                  "saliency", "--video-size", VIDEO, "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["class"] == classes[1] and res["segments"] == 4 and res["method"] == "saliency"
    e = ex.load(out / "maps.npz")
    assert e.class_name == classes[1] and e.meta["segments"] == 4
    # 2 GOPs for 4 segments: said on stderr, and every row names the GOP it shows
    assert res["num_gops"] == 2 and res["gops"] == e.meta["gops"] == [0, 0, 1, 1]
    assert "has 2 GOPs, fewer than the 4 segments" in r.stderr and "0, 0, 1, 1" in r.stderr
    for m in ("i", "mv", "r"):
        assert e.heat[m].shape == (4, 24, 24) and np.isfinite(e.heat[m]).all()
    assert e.inputs["iframe"].shape == (4, 24, 24, 3) and e.inputs["mv"].shape == (4, 24, 24, 2)
    import matplotlib.image

    img = matplotlib.image.imread(out / "explain.png")
    assert img.shape[0] > 4 * 150 and img.shape[1] > 6 * 150  # 4 rows, 6 panels a row


@pytest.mark.parametrize("segments", [2, 4, 6])
def test_explain_gops_are_those_the_dataset_reads(trained, segments):
    """read_video's GOP labels are the indices the dataset sampled (its own load), and
    segments labelled with the same GOP show the same I-frame."""
    from hybrid.data.dataset import CompressedVideoDataset
    from hybrid.training.evaluate import load_model

    model, _, _ = load_model(trained[1])
    video = _video(trained)
    sample, read = ex.read_video(model, video, segments, (64, 48))
    ds = CompressedVideoDataset.one_video(video, segments, crop=24, video_size=(64, 48))
    assert read["gops"] == ds.load(video.name, segments)[1]
    assert read["num_gops"] == 2 and len(read["gops"]) == segments
    frames = sample["iframe"].flatten(1)
    for a in range(segments):
        for b in range(segments):
            same = bool((frames[a] == frames[b]).all())
            assert same == (read["gops"][a] == read["gops"][b]), (a, b, read["gops"])


def test_explain_no_repeat_no_warning(trained, tmp_path):
    r = CliRunner().invoke(main, ["explain", str(trained[1]), str(_video(trained)), "-o",
                                  str(tmp_path / "o"), "--video-size", VIDEO, "--json"])
    assert r.exit_code == 0 and r.stderr == "", r.output
    assert json.loads(r.stdout)["gops"] == [0, 1]


def _h264_clip(src: Path) -> Path:
    """An 80x60 H.264 (or MPEG-4 GOP 250) clip: not in the reader's form."""
    import av

    with av.open(str(src), "w") as f:
        st = f.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=25)
        st.width, st.height, st.pix_fmt = 80, 60, "yuv420p"
        rng = np.random.default_rng(0)
        for t in range(30):
            img = np.full((60, 80, 3), 90, np.uint8)
            img[20:36, 10 + t:26 + t] = rng.integers(0, 255, (16, 16, 3))
            f.mux(st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        f.mux(st.encode())
    return src


def test_explain_any_video_is_transcoded(trained, tmp_path):
    """A video not in the reader's form (another codec and size) is read as predict does."""
    src = _h264_clip(tmp_path / "clip.mp4")
    r = CliRunner().invoke(main, ["explain", str(trained[1]), str(src), "-o",
                                  str(tmp_path / "o"), "--video-size", VIDEO])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "explain.png").stat().st_size > 5000
    r = CliRunner().invoke(main, ["explain", str(trained[1]), str(src), "-o",
                                  str(tmp_path / "o2"), "--video-size", VIDEO, "--no-transcode"])
    assert r.exit_code == 1 and "clip.mp4" in r.output, r.output


def test_explain_default_video_size_never_upscales(trained, tmp_path, monkeypatch):
    """Without --video-size and with a checkpoint that does not record its training
    size, a small video is read at its own size (64x48; a transcoded 80x60 clip at
    80x60), not the 340x256 of prepare: the centre crop is 7/8 of its own
    height. A checkpoint that records its training size is read at that size."""
    import torch

    import hybrid.video.transcode as tc
    from hybrid.data.dataset import CompressedVideoDataset
    from hybrid.training.evaluate import load_model

    model, _, ckpt = load_model(trained[1])
    assert ex.training_video_size(ckpt) == (64, 48)  # train records the size it read
    del ckpt["video_size"]  # as a checkpoint of an earlier version
    torch.save(ckpt, tmp_path / "unsized.pt")
    assert ex.training_video_size(ckpt) is None
    sizes, transcode = [], tc.transcode
    monkeypatch.setattr(tc, "transcode", lambda src, dst, cfg, **kw: (
        sizes.append(cfg.size), transcode(src, dst, cfg, **kw))[1])
    for video, (w, h), transcoded in [(_video(trained), (64, 48), []),
                                      (_h264_clip(tmp_path / "clip.mp4"), (80, 60), [(80, 60)])]:
        sizes.clear()
        _, read = ex.read_video(model, video)
        assert read["video_size"] == [w, h] and sizes == transcoded, (video, sizes)
        # the dataset's eval crop at that size is 7/8 of the short side (224 at 340x256)
        with tc.as_mpeg4(video, (w, h)) as path:
            ds = CompressedVideoDataset.one_video(path, 2, crop=24, video_size=(w, h))
            assert ds[0]["box"][:2].tolist() == [int(h * 0.875)] * 2
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "unsized.pt"),
                                  str(_video(trained)), "-o", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["video_size"] == [64, 48], r.output
    ckpt["video_size"] = [48, 32]  # as train records it
    torch.save(ckpt, tmp_path / "sized.pt")
    assert ex.training_video_size(ckpt) == (48, 32)
    for extra, want in [([], [48, 32]), (["--video-size", "96x64"], [96, 64])]:
        r = CliRunner().invoke(main, ["explain", str(tmp_path / "sized.pt"),
                                      str(_video(trained)), "-o", str(tmp_path / "o2"),
                                      "--json", *extra])
        assert r.exit_code == 0 and json.loads(r.stdout)["video_size"] == want, r.output
    r = CliRunner().invoke(main, ["explain", "--help"])
    assert "the video's own size" in " ".join(r.output.split()), r.output


def test_explain_bad_input_names_the_file(trained, tmp_path):
    data, ckpt = trained
    video = _video(trained)
    bad_video = tmp_path / "broken.avi"
    bad_video.write_bytes(b"\x00not a video" * 100)
    bad_ckpt = tmp_path / "broken.pt"
    bad_ckpt.write_bytes(b"nope")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        ([str(ckpt), str(bad_video)], 1, "broken.avi"),
        ([str(ckpt), str(tmp_path / "missing.avi")], 1, "missing.avi"),
        ([str(bad_ckpt), str(video)], 1, "broken.pt"),
        ([str(ckpt), str(video), "--class", "nope"], 1,
         "Error: --class 'nope' is not a class of"),
        ([str(ckpt), str(video), "--class", "nope"], 1, "(classes: move_up, "),
        ([str(ckpt), str(video), "--segments", "3"], 1,
         "Error: --segments 3: must be a positive multiple of the model's 2 segments (2, 4,"),
        ([str(ckpt), str(video), "--segments", "0"], 1, "Error: --segments 0: must be a"),
        ([str(ckpt), str(video), "--segments", "-2"], 1, "Error: --segments -2: must be a"),
    ]
    for args, code, msg in cases:
        r = CliRunner().invoke(main, ["explain", *args, "-o", str(tmp_path / "o"),
                                      "--video-size", VIDEO])
        assert r.exit_code == code and msg in r.output, (args, r.output)
    for args, _, _ in cases[3:]:  # a user error is one line, no usage text before it
        r = CliRunner().invoke(main, ["explain", *args, "-o", str(tmp_path / "o")])
        assert r.output.splitlines() == [r.output.strip()], (args, r.output)
    r = CliRunner().invoke(main, ["explain", str(ckpt), str(video), "-o", str(a_file)])
    assert r.exit_code != 0 and "a_file" in r.output, r.output
    assert not (tmp_path / "o").exists()  # nothing half-written


# ---- the denoising measure


def test_noise_model_rates_and_accumulation():
    from hybrid.explain.denoise import add_noise

    clean = np.zeros((11, 40, 40, 2), np.float32)
    rng = np.random.default_rng(0)
    for kind in ("sensor", "jitter", "transient"):
        np.testing.assert_array_equal(add_noise(clean, kind, 0.0, rng), clean)
    step = np.diff(add_noise(clean, "sensor", 0.2, rng), axis=0, prepend=0)
    events = np.abs(step).sum(-1)[:, ::4, ::4] > 0  # one draw per 4x4 cell and frame
    assert events.mean() == pytest.approx(0.2, abs=0.02)
    mag = np.hypot(step[..., 0], step[..., 1])[np.abs(step).sum(-1) > 0]
    assert mag.min() >= 1.0 - 1e-5 and mag.max() <= 3.0 + 1e-5
    once = add_noise(clean, "transient", 0.2, np.random.default_rng(1))
    assert np.abs(once).sum(-1)[:, ::4, ::4].astype(bool).mean() == pytest.approx(0.2, abs=0.02)
    shake = add_noise(clean, "jitter", 1.0, rng)  # whole frame, a 1 px random walk
    assert (shake == shake[:, :1, :1]).all() and np.abs(np.diff(shake[:, 0, 0], axis=0)).max() <= 1


def test_stm_denoising_example(trained, tmp_path, monkeypatch):
    _, ckpt = trained
    monkeypatch.setattr(sys, "argv", ["stm_denoising", "--checkpoint", str(ckpt), "--out",
                                      str(tmp_path), "--clips", "2", "--repeats", "1",
                                      "--rates", "0,0.5", "--video-size", VIDEO])
    monkeypatch.syspath_prepend(str(EXAMPLES))
    runpy.run_path(str(EXAMPLES / "stm_denoising.py"), run_name="__main__")
    assert (tmp_path / "stm_denoising.png").stat().st_size > 5000
    d = json.loads((tmp_path / "stm_denoising.json").read_text())
    assert set(d["results"]) == {"sensor", "jitter", "transient"}
    for kind, rows in d["results"].items():
        assert [r["rate"] for r in rows] == [0.0, 0.5]
        clean, noisy = rows
        # noise outside the object raises the accumulated MVs' energy there, as it must
        assert noisy["mv_energy"]["outside"] > clean["mv_energy"]["outside"], kind
        for r in rows:
            for m in ("stm_spike_rate", "stm_v_energy", "mv_event_rate", "mv_energy"):
                assert 0.0 <= r[m]["selectivity"] <= 1.0, (kind, m)
    assert len(d["stm_mv_threshold"]) == 3 and 0 < min(d["stm_mv_leak"])
