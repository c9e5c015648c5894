"""Any input in every command that takes a video: H.264 with B-frames (and other
sizes) are transcoded in process to a temporary file that is always removed;
--no-transcode refuses; `hybrid extract` streams GOPs to its file."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.video.extract import extract_arrays, read_extract
from hybrid.video.probe import probe
from hybrid.video.synth import SynthConfig, render_video
from hybrid.video.transcode import as_mpeg4


def h264(path, frames=30, size=(160, 120)):
    """An H.264 MP4 with B-frames (what a phone or YouTube gives)."""
    import av

    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = *size, "yuv420p"
        st.codec_context.options = {"bf": "2", "b-adapt": "0", "g": "30", "preset": "ultrafast"}
        imgs = render_video(2, 1, SynthConfig(size=size, frames=max(frames, 12)))
        for t, img in zip(range(frames), imgs):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = t
            out.mux(st.encode(f))
        out.mux(st.encode(None))
    assert "B" in probe(path).types
    return path


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Temporary files go to a folder of this test, checked empty afterwards."""
    t = tmp_path / "tmp"
    t.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(t))
    yield t
    assert list(t.iterdir()) == [], "a temporary transcode was left behind"


def test_extract_transcodes_h264_in_process(tmp_path, own_tmp):
    src = h264(tmp_path / "phone.mp4")
    out = tmp_path / "x.h5"
    res = CliRunner().invoke(main, ["extract", str(src), "-o", str(out), "--size", "64x48",
                                    "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["transcoded"] and rep["shapes"]["iframe"] == [3, 48, 64, 3]
    arrays, attrs = read_extract(out)
    assert attrs["source"] == str(src)
    with as_mpeg4(src, (64, 48)) as path:  # the same transcode, read in one piece
        assert path != src and path.parent.parent == own_tmp
        direct = extract_arrays(path)
    assert not path.exists()
    for k in direct:
        np.testing.assert_array_equal(arrays[k], direct[k], err_msg=k)


def test_no_transcode_refuses_and_names_the_file(tmp_path, own_tmp):
    src = h264(tmp_path / "phone.mp4")
    out = tmp_path / "x.h5"
    res = CliRunner().invoke(main, ["extract", str(src), "-o", str(out), "--no-transcode"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert str(src) in res.output and "h264" in res.output and "--no-transcode" in res.output
    assert not out.exists() and not out.with_name("x.h5.part").exists()


def test_video_in_form_is_read_as_it_is(tmp_path, own_tmp):
    from hybrid.video.transcode import EncodeConfig, encode_mpeg4

    src = tmp_path / "ok.avi"
    encode_mpeg4(render_video(0, 0, SynthConfig(size=(96, 64), frames=24)), src,
                 EncodeConfig(size=(96, 64)))
    with as_mpeg4(src) as path:
        assert path == src
    res = CliRunner().invoke(main, ["extract", str(src), "-o", str(tmp_path / "x.h5"),
                                    "--no-transcode", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["transcoded"] is False
    # another --size asks for a transcode
    res = CliRunner().invoke(main, ["extract", str(src), "-o", str(tmp_path / "y.h5"),
                                    "--size", "64x48", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["shapes"]["iframe"][1:3] == [48, 64]


def test_inspect_shows_source_and_what_the_reader_reads(tmp_path, own_tmp):
    src = h264(tmp_path / "phone.mp4")
    res = CliRunner().invoke(main, ["inspect", str(src), "--size", "64x48", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["codec"] == "h264" and "B" in info["frame_types"]
    assert info["reader_form"] is False
    t = info["transcoded"]
    assert t["codec"] == "mpeg4" and (t["width"], t["height"]) == (64, 48)
    assert t["gop_sizes"] == [12, 12, 6] and set(t["frame_types"]) == {"I", "P"}
    res = CliRunner().invoke(main, ["inspect", str(src), "--no-transcode"])
    assert res.exit_code == 0 and "refuse" in res.output and "as read" not in res.output


def test_error_after_transcoding_names_the_source(tmp_path, own_tmp):
    src = h264(tmp_path / "short.mp4", frames=8)  # fewer frames than one GOP
    res = CliRunner().invoke(main, ["extract", str(src), "-o", str(tmp_path / "x.h5")])
    assert res.exit_code == 1 and str(src) in res.output and "fewer than one GOP" in res.output


def test_sigterm_during_extract_leaves_no_temporary_file(tmp_path):
    src = h264(tmp_path / "long.mp4", frames=480, size=(320, 240))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "x.h5"
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "hybrid", "extract", str(src), "-o",
                             str(out), "--size", "340x256"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not any(tmp.glob("hybrid-transcode-*/*")) and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, "the run should have been stopped"
    assert list(tmp.iterdir()) == [], err.decode()
    assert not out.exists() and not out.with_name("x.h5.part").exists()
