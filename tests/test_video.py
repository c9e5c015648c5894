"""The compressed-domain reader, transcoder and typed errors, on small synthetic videos
made here (seeded)."""
from pathlib import Path

import numpy as np
import pytest

from hybrid.video import errors as E
from hybrid.video.probe import probe
from hybrid.video.reader import mv_field, read_gops
from hybrid.video.transcode import EncodeConfig, encode_mpeg4, is_coviar_form, transcode

W, H = 128, 96


def _texture(seed=0, size=32, cell=4):
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 255, (size // cell, size // cell, 3))
    return np.kron(cells, np.ones((cell, cell, 1))).astype(np.uint8)


def square_frames(n, dx, dy, x0=8, y0=8, size=32):
    tex = _texture(size=size)
    for t in range(n):
        img = np.full((H, W, 3), 90, np.uint8)
        x, y = x0 + dx * t, y0 + dy * t
        img[y:y + size, x:x + size] = tex
        yield img


@pytest.fixture(scope="module")
def square_video(tmp_path_factory):
    """A 32x32 textured square moving (+2, +2) px per frame: 2 GOPs (24 frames)."""
    p = tmp_path_factory.mktemp("v") / "square.avi"
    encode_mpeg4(square_frames(24, 2, 2), p, EncodeConfig(size=(W, H)))
    return p


def test_probe_gop_structure(square_video):
    info = probe(square_video)
    assert info.codec == "mpeg4" and (info.width, info.height) == (W, H)
    assert info.types == ("I" + "P" * 11) * 2 and info.gops == [12, 12]
    assert is_coviar_form(square_video, (W, H))


@pytest.mark.parametrize("dx,dy", [(4, 2), (-2, 0), (0, 4)])
def test_accumulated_mv_is_offset_times_index_coviar(tmp_path, dx, dy):
    p = tmp_path / "sq.avi"
    x0 = 8 if dx >= 0 else 80
    encode_mpeg4(square_frames(12, dx, dy, x0=x0), p, EncodeConfig(size=(W, H)))
    (g,) = list(read_gops(p, accumulate=True, coviar=True))
    assert g.iframe.shape == (H, W, 3) and g.iframe.dtype == np.uint8
    assert g.mv.shape == (11, H, W, 2) and g.mv.dtype == np.int16  # CoViAR: integers
    assert g.residual.shape == (11, H, W, 3) and g.residual.dtype == np.int16
    for k in range(11):
        t = k + 1
        x, y = x0 + dx * t, 8 + dy * t
        inside = g.mv[k, y:y + 32, x:x + 32]
        assert (inside[..., 0] == dx * t).all() and (inside[..., 1] == dy * t).all(), (
            f"P-frame {t}: MV inside the square should be {(dx * t, dy * t)}")
        bg = np.ones((H, W), bool)
        bg[max(0, min(y, 8) - 16):max(y, 8) + 48, max(0, min(x, x0) - 16):max(x, x0) + 48] = 0
        assert (g.mv[k][bg] == 0).all(), "static background must have zero MV"
        assert (g.residual[k][bg] == 0).all(), "static background must have zero residual"


def test_non_accumulated_mv_is_per_frame_offset(square_video):
    g = next(read_gops(square_video, accumulate=False, coviar=True))
    for k in range(11):
        x, y = 8 + 2 * (k + 1), 8 + 2 * (k + 1)
        inside = g.mv[k, y:y + 32, x:x + 32].reshape(-1, 2)
        assert (inside == [2, 2]).all()
    # the accumulated field is the composition of the per-frame ones
    acc = next(read_gops(square_video, accumulate=True, coviar=True))
    assert acc.mv[10, 40:50, 60:70].tolist() != g.mv[10, 40:50, 60:70].tolist()


def test_second_gop_restarts_accumulation(square_video):
    gops = list(read_gops(square_video))
    assert [g.start for g in gops] == [0, 12] and [g.p_frames for g in gops] == [11, 11]
    x, y = 8 + 2 * 13, 8 + 2 * 13  # square in frame 13 = first P of GOP 1
    assert (gops[1].mv[0, y:y + 32, x:x + 32].reshape(-1, 2) == [2, 2]).all()


def test_subpixel_mode_keeps_half_pel():
    vec = np.zeros(1, dtype=[("source", "i4"), ("w", "u1"), ("h", "u1"), ("src_x", "i2"),
                             ("src_y", "i2"), ("dst_x", "i2"), ("dst_y", "i2"),
                             ("motion_x", "i4"), ("motion_y", "i4"), ("motion_scale", "u2")])
    # content moved +3.5 px right, -1 px up: motion = -(7, -2) at scale 2; src trunc'd
    vec[0] = (-1, 16, 16, 24 - 3, 24 + 1, 24, 24, -7, 2, 2)
    f_int = mv_field(vec, 48, 64, coviar=True)
    f_sub = mv_field(vec, 48, 64, coviar=False)
    assert f_int[24, 24].tolist() == [3, -1] and f_sub[24, 24].tolist() == [3.5, -1.0]
    assert (f_int[16:32, 16:32] == [3, -1]).all() and f_int[15, 16].tolist() == [0, 0]


def test_short_final_gop(tmp_path):
    p = tmp_path / "short.avi"
    encode_mpeg4(square_frames(17, 2, 0), p, EncodeConfig(size=(W, H)))
    gops = list(read_gops(p))
    assert [g.p_frames for g in gops] == [11, 4]


def test_transcode_h264_with_bframes(tmp_path):
    import av

    src = tmp_path / "in.mp4"
    with av.open(str(src), "w") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = 160, 120, "yuv420p"
        st.codec_context.options = {"bf": "2", "b-adapt": "0", "g": "30"}
        tex = _texture()
        for t in range(30):
            img = np.full((120, 160, 3), 90, np.uint8)
            img[20:52, 10 + 2 * t:42 + 2 * t] = tex
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = t
            out.mux(st.encode(f))
        out.mux(st.encode(None))
    before = probe(src)
    assert before.codec == "h264" and "B" in before.types
    with pytest.raises(E.UnsupportedStreamError, match="B-frame"):
        list(read_gops(src))
    dst = tmp_path / "out.avi"
    transcode(src, dst, EncodeConfig(size=(W, H)))
    after = probe(dst)
    assert after.codec == "mpeg4" and (after.width, after.height) == (W, H)
    assert after.types == ("I" + "P" * 11) * 2 + "I" + "P" * 5 and after.gops == [12, 12, 6]
    assert [g.p_frames for g in read_gops(dst)] == [11, 11, 5]
    # already in form: copied byte for byte, not re-encoded
    assert transcode(dst, cfg=EncodeConfig(size=(W, H))) == dst.read_bytes()


# ---- bad input: each gives its typed error naming the file ----------------------

def _bad(kind: str, tmp: Path, good: Path) -> Path:
    data = good.read_bytes()
    p = tmp / f"{kind}.avi"
    if kind == "missing":
        return tmp / "nope.avi"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "not_video":
        p = tmp / "notes.avi"
        p.write_text("this is a text file, not a video\n" * 20)
    elif kind == "audio_only":
        import av

        p = tmp / "audio.wav"
        with av.open(str(p), "w") as out:
            st = out.add_stream("pcm_s16le", rate=8000)
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                            layout="mono")
            fr.sample_rate = 8000
            for pkt in st.encode(fr):
                out.mux(pkt)
            out.mux(st.encode(None))
    elif kind == "truncated":
        p.write_bytes(data[:len(data) * 6 // 10])
    elif kind in ("truncated_mp4", "truncated_m4v"):
        p = tmp / f"t.{kind[-3:]}"
        encode_mpeg4(square_frames(24, 2, 2), p, EncodeConfig(size=(W, H)))
        p.write_bytes(p.read_bytes()[:p.stat().st_size * 6 // 10])
    elif kind == "corrupt":
        b = bytearray(data)
        for i in np.random.default_rng(1).integers(len(b) // 3, len(b) * 2 // 3, 50):
            b[i] ^= 0xFF
        p.write_bytes(bytes(b))
    elif kind == "too_short":
        encode_mpeg4(square_frames(8, 2, 0), p, EncodeConfig(size=(W, H)))
    return p


BAD = {"missing": E.VideoNotFoundError, "empty": E.EmptyVideoError,
       "not_video": E.NotAVideoError, "audio_only": E.NoVideoStreamError,
       "truncated": E.TruncatedVideoError, "truncated_mp4": E.TruncatedVideoError,
       "truncated_m4v": E.TruncatedVideoError, "corrupt": E.CorruptVideoError,
       "too_short": E.TooShortVideoError}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_typed_error(kind, tmp_path, square_video):
    p = _bad(kind, tmp_path, square_video)
    with pytest.raises(BAD[kind]) as ei:
        list(read_gops(p))
    assert str(p) in str(ei.value) and isinstance(ei.value, E.VideoError)


@pytest.mark.parametrize("accumulate", [True, False])
def test_fast_path_equals_reference(tmp_path, accumulate):
    """The grid painter + packed tracer equal the per-vector reference, on a scene with
    rotation, a distractor, camera jitter and noise (vectors reaching off the frame)."""
    from hybrid.video.fields import Tracer, grid_field, unpack
    from hybrid.video.reader import _decode
    from hybrid.video.synth import SynthConfig, render_video

    p = tmp_path / "scene.avi"
    cfg = SynthConfig(size=(96, 64), frames=24, jitter=0.5)
    encode_mpeg4(render_video(4, 3, cfg), p, EncodeConfig(size=(96, 64)))
    fast = list(read_gops(p, accumulate=accumulate, coviar=True))
    ref_mv, ref_res, tracer, n_vec = [], [], None, 0
    for kind, rgb, vec in _decode(p, 12):
        if kind == "I":
            tracer = Tracer(rgb, accumulate, coviar=True)
            continue
        field = mv_field(vec, 64, 96, coviar=True)
        assert (unpack(grid_field(vec, 64, 96)) == field).all()
        n_vec += 0 if vec is None else int((vec["dst_x"] != vec["src_x"]).sum())
        mv, res = tracer.step(rgb, field)
        ref_mv.append(mv)
        ref_res.append(res)
    assert n_vec > 50, "the scene must have motion"
    np.testing.assert_array_equal(np.concatenate([g.mv for g in fast]), np.stack(ref_mv))
    np.testing.assert_array_equal(np.concatenate([g.residual for g in fast]),
                                  np.stack(ref_res))


def test_grid_field_zeroes_pixels_whose_source_leaves_the_frame():
    from hybrid.video.fields import grid_field, unpack

    vec = np.zeros(2, dtype=[("source", "i4"), ("w", "u1"), ("h", "u1"), ("src_x", "i2"),
                             ("src_y", "i2"), ("dst_x", "i2"), ("dst_y", "i2"),
                             ("motion_x", "i4"), ("motion_y", "i4"), ("motion_scale", "u2")])
    vec[0] = (-1, 16, 16, 8 - 5, 8, 8, 8, 10, 0, 2)  # left-edge block, content moved +5 x
    vec[1] = (-1, 16, 16, 56, 40 + 3, 56, 40, 0, 6, 2)  # bottom-right block, moved -3 y
    g, r = unpack(grid_field(vec, 48, 64)), mv_field(vec, 48, 64)
    assert (g == r).all()
    assert (g[0:16, 0:5] == 0).all() and (g[0:16, 5:16] == [5, 0]).all()
    # source row = row + 3 must lie inside the 48 rows: rows 45..47 get no vector
    assert (g[32:45, 48:64] == [0, -3]).all() and (g[45:48, 48:64] == 0).all()


@pytest.mark.parametrize("accumulate", [True, False])
def test_fast_tracer_per_pixel_field_equals_cells(accumulate):
    """The tracer's per-pixel input (the off-grid fallback) gives what the per-cell one
    gives, and both equal the reference Tracer, on random frames and vectors that reach
    off the frame."""
    from hybrid.video.fields import CELL, FastTracer, Tracer, grid_cells, grid_field, unpack

    rng = np.random.default_rng(0)
    h, w = 40, 52  # not multiples of 8: partial cells on the right and bottom
    frames = rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8)
    fast_c, fast_p = FastTracer(frames[0], accumulate), FastTracer(frames[0], accumulate)
    ref = Tracer(frames[0], accumulate, coviar=True)
    dt = [("source", "i4"), ("w", "u1"), ("h", "u1"), ("src_x", "i2"), ("src_y", "i2"),
          ("dst_x", "i2"), ("dst_y", "i2"), ("motion_x", "i4"), ("motion_y", "i4"),
          ("motion_scale", "u2")]
    for t in range(1, 4):
        vec = np.zeros(12, dt)
        vec["source"], vec["w"], vec["h"] = -1, 16, 16
        vec["dst_x"] = rng.integers(0, 4, 12) * 16 + 8
        vec["dst_y"] = rng.integers(0, 3, 12) * 16 + 8
        vec["src_x"] = vec["dst_x"] - rng.integers(-9, 10, 12)
        vec["src_y"] = vec["dst_y"] - rng.integers(-9, 10, 12)
        outs = []
        for tracer, field, cell in ((fast_c, grid_cells(vec, h, w), CELL),
                                    (fast_p, grid_field(vec, h, w), 1)):
            mv, res = np.empty((h, w, 2), np.float32), np.empty((h, w, 3), np.float32)
            tracer.step(frames[t], field, mv, res, cell)
            outs.append((mv, res))
        mv_r, res_r = ref.step(frames[t], unpack(grid_field(vec, h, w)))
        for mv, res in outs:
            np.testing.assert_array_equal(mv, mv_r)
            np.testing.assert_array_equal(res, res_r)
        assert np.abs(mv_r).max() > 0
