"""Exact pixels at every frame size: every reader path's I-frame and residual are built
from FFmpeg's ``rgb24`` conversion of the decoded frame, checked here against an
independent decode (a plain PyAV decode of the same file, no motion-vector export) and
that decode against a numpy BT.601 conversion of the YUV planes (so a conversion that
leaves columns unwritten is caught even where both agree). Widths that are and are not
multiples of 8 and 16; 340 (the default) once showed black last columns."""
import numpy as np
import pytest

from hybrid.video.reader import read_gops
from hybrid.video.synth import SynthConfig, render_video
from hybrid.video.transcode import EncodeConfig, encode_mpeg4

SIZES = [(340, 256), (342, 64), (176, 144), (130, 96), (1276, 48), (96, 40)]
MODES = [(True, True), (False, True), (True, False), (False, False)]  # accumulate, coviar


@pytest.fixture(scope="module", params=SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def video(request, tmp_path_factory):
    """A moving textured object, a distractor, camera jitter and noise: 24 frames."""
    w, h = request.param
    p = tmp_path_factory.mktemp("px") / f"v{w}x{h}.avi"
    encode_mpeg4(render_video(3, w + h, SynthConfig(size=(w, h), frames=24)), p,
                 EncodeConfig(size=(w, h)))
    return p, independent_decode(p)


def independent_decode(path):
    """(rgb24 frames, yuv420p planes) of every frame, PyAV's plain decode."""
    import av

    rgb, yuv = [], []
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            rgb.append(f.to_ndarray(format="rgb24"))
            yuv.append(f.to_ndarray(format="yuv420p"))
    return np.stack(rgb), yuv


def bt601(yuv: np.ndarray, h: int, w: int) -> np.ndarray:
    """Limited-range BT.601 YUV 4:2:0 -> RGB, chroma repeated (numpy, float)."""
    y = yuv[:h].astype(np.float64)
    u = yuv[h:h + h // 4].reshape(h // 2, w // 2).astype(np.float64)
    v = yuv[h + h // 4:].reshape(h // 2, w // 2).astype(np.float64)
    u, v = (np.repeat(np.repeat(c, 2, 0), 2, 1) - 128 for c in (u, v))
    y = 1.164 * (y - 16)
    return np.clip(np.stack([y + 1.596 * v, y - 0.392 * u - 0.813 * v, y + 2.017 * u], -1),
                   0, 255)


def test_rgb24_matches_yuv_planes_in_every_column(video):
    _, (rgb, yuv) = video
    t, h, w, _ = rgb.shape
    for k in (0, 5, t - 1):
        err = np.abs(rgb[k].astype(np.float64) - bt601(yuv[k], h, w))  # (H, W, 3)
        col = err.mean(axis=(0, 2))
        assert col.max() < 12 and err.mean() < 3, (
            f"frame {k}: columns {np.flatnonzero(col >= 12)[:8]} disagree with the YUV "
            f"planes (mean |diff| {col.max():.1f})")


@pytest.mark.parametrize("accumulate,coviar", MODES)
def test_iframes_and_residuals_equal_independent_rgb24(video, accumulate, coviar):
    path, (rgb, _) = video
    t, h, w, _ = rgb.shape
    gops = list(read_gops(path, accumulate=accumulate, coviar=coviar))
    assert [g.start for g in gops] == [0, 12]
    yy, xx = np.mgrid[0:h, 0:w]
    moved = 0
    for g in gops:
        np.testing.assert_array_equal(g.iframe, rgb[g.start],
                                      err_msg=f"I-frame at {g.start}, {w}x{h}")
        for k in range(g.p_frames):
            n = g.start + 1 + k
            ref = rgb[g.start] if accumulate else rgb[n - 1]
            # the pixel each residual subtracts: p - MV, nearest, in the frame
            sx = np.clip(np.rint(xx - g.mv[k, ..., 0]), 0, w - 1).astype(int)
            sy = np.clip(np.rint(yy - g.mv[k, ..., 1]), 0, h - 1).astype(int)
            expect = rgb[n].astype(np.float32) - ref[sy, sx]
            np.testing.assert_array_equal(g.residual[k], expect,
                                          err_msg=f"residual of frame {n}, {w}x{h}")
            moved += int((g.mv[k] != 0).any(-1).sum())
    assert moved > 0, "the scene must move"
    # the right edge is picture, not black: the I-frame's last columns vary
    assert gops[0].iframe[:, -4:].std() > 1
