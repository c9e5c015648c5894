"""The fast extraction path against the plain reference path, at odd sizes and several
seeds: the run-wise trace kernel (``FastTracer``) against the numpy ``Tracer`` fed
the per-pixel field of the per-vector painter ``mv_field``; frames with padded rows (as
FFmpeg converts them) against the same frames contiguous; the recycled GOP outputs
never overwrite a GOP the consumer still holds."""
import numpy as np
import pytest
from videotools import DT, padded, random_vectors

from hybrid.video.fields import CELL, FastTracer, Tracer, grid_cells, mv_field, with_offsets


@pytest.mark.parametrize("dtype", [np.float32, np.int16])  # int16: MV written as packed words
@pytest.mark.parametrize("accumulate", [True, False])
@pytest.mark.parametrize("h,w", [(96, 130), (64, 342), (33, 97), (40, 52), (144, 176)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_tracer_equals_reference(h, w, seed, accumulate, dtype):
    rng = np.random.default_rng(seed * 1000 + h + w)
    reach = int(rng.choice([3, 9, 40]))  # 40: sources far off the frame
    # smooth frames (consecutive pixels similar) plus noise, so runs and segments vary
    base = rng.integers(0, 256, (h + 64, w + 64, 3), dtype=np.uint8)
    frames = [np.ascontiguousarray(np.roll(base, (t, 2 * t), (0, 1))[:h, :w])
              for t in range(6)]
    pad = int(rng.integers(1, 40))
    fast_c, fast_p = FastTracer(frames[0], accumulate), FastTracer(frames[0], accumulate)
    fast_pix = FastTracer(frames[0], accumulate)
    ref = Tracer(frames[0], accumulate, coviar=True)
    moved = 0
    for t in range(1, len(frames)):
        vec = random_vectors(rng, h, w, reach)
        field = mv_field(vec, h, w, coviar=True)  # the per-vector reference painter
        mv_r, res_r = ref.step(frames[t], field)
        cells = grid_cells(vec, h, w)
        assert cells is not None
        for tracer, img, f, cell in ((fast_c, frames[t], cells, CELL),
                                     (fast_p, padded(frames[t], pad), cells, CELL),
                                     (fast_pix, frames[t], with_offsets(field), 1)):
            unset = np.nan if dtype == np.float32 else -32768  # no output holds this
            mv, res = np.full((h, w, 2), unset, dtype), np.full((h, w, 3), unset, dtype)
            tracer.step(img, f, mv, res, cell)
            np.testing.assert_array_equal(mv, mv_r, err_msg=f"MV at frame {t}, cell {cell}")
            np.testing.assert_array_equal(res, res_r,
                                          err_msg=f"residual at frame {t}, cell {cell}")
        moved += int((mv_r != 0).any(-1).sum())
    assert moved > 0


def test_fast_tracer_reads_previous_padded_frame_without_accumulation():
    """Per-frame residuals subtract the previous frame, itself padded: the tracer keeps
    the view and reads it with its own row stride."""
    rng = np.random.default_rng(5)
    h, w = 48, 70
    frames = rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8)
    fast, ref = FastTracer(frames[0], False), Tracer(frames[0], False, coviar=True)
    for t in range(1, 4):
        vec = random_vectors(rng, h, w, 9)
        mv, res = np.empty((h, w, 2), np.float32), np.empty((h, w, 3), np.float32)
        fast.step(padded(frames[t], 3 + 8 * t), grid_cells(vec, h, w), mv, res, CELL)
        mv_r, res_r = ref.step(frames[t], mv_field(vec, h, w, coviar=True))
        np.testing.assert_array_equal(mv, mv_r)
        np.testing.assert_array_equal(res, res_r)


def test_fast_tracer_rejects_frames_it_cannot_read():
    img = np.zeros((16, 24, 3), np.uint8)
    tracer = FastTracer(img, True)
    mv, res = np.empty((16, 24, 2), np.float32), np.empty((16, 24, 3), np.float32)
    cells = np.zeros((2, 3), np.int64)
    with pytest.raises(AssertionError, match="packed pixels"):
        tracer.step(np.zeros((16, 24, 4), np.uint8)[..., :3], cells, mv, res, CELL)
    with pytest.raises(ValueError, match="does not match"):
        tracer.step(img, np.zeros((3, 3), np.int64), mv, res, CELL)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from hybrid.video.synth import SynthConfig, render_video
    from hybrid.video.transcode import EncodeConfig, encode_mpeg4

    p = tmp_path_factory.mktemp("fast") / "scene.avi"
    encode_mpeg4(render_video(2, 7, SynthConfig(size=(130, 96), frames=60)), p,
                 EncodeConfig(size=(130, 96)))
    return p


@pytest.mark.parametrize("thread", [False, True])
def test_held_gops_are_never_overwritten(scene, thread):
    """The reader hands a dropped GOP's outputs to a later GOP; a GOP (or a view of
    it) the consumer keeps must keep its values."""
    from hybrid.video.reader import read_gops

    held = list(read_gops(scene, trace_thread=thread))  # every GOP kept
    snap = [(g.mv.copy(), g.residual.copy()) for g in held]
    again = [g for g in read_gops(scene, trace_thread=thread)]
    views = [g.residual[2] for g in read_gops(scene, trace_thread=thread)]  # a view of each
    for g, (mv, res), h, v in zip(held, snap, again, views):
        np.testing.assert_array_equal(g.mv, mv)
        np.testing.assert_array_equal(g.residual, res)
        np.testing.assert_array_equal(h.residual, res)
        np.testing.assert_array_equal(v, res[2])
    assert len({id(g.mv.base) for g in held}) == len(held) == 5


@pytest.mark.parametrize("thread", [False, True])
def test_dropped_gops_outputs_are_recycled(scene, thread):
    """A consumer that drops each GOP (as ``hybrid extract`` does) gets the same few
    arrays again, with every GOP's values equal to a run that keeps them all."""
    from hybrid.video.reader import read_gops

    expect = [(g.mv.copy(), g.residual.copy()) for g in read_gops(scene)]
    bases, n = set(), 0
    for g in read_gops(scene, trace_thread=thread):  # (zip or enumerate would hold it)
        np.testing.assert_array_equal(g.mv, expect[n][0])
        np.testing.assert_array_equal(g.residual, expect[n][1])
        bases.add(id(g.mv.base))
        n += 1
        del g
    assert n == 5
    # each GOP dropped before the next is asked for: one set of arrays serves them all
    # (what keeps ``hybrid extract``'s memory at one GOP)
    assert len(bases) == 1, f"{len(bases)} output arrays for 5 GOPs: not recycled"


def test_tracer_error_reaches_the_reader_and_stops_the_thread(scene, monkeypatch):
    import threading

    from hybrid.video import fields
    from hybrid.video.reader import read_gops

    def broken(self, *args):
        raise RuntimeError("tracer broke")

    monkeypatch.setattr(fields.FastTracer, "step", broken)
    for thread in (True, False):
        with pytest.raises(RuntimeError, match="tracer broke"):
            list(read_gops(scene, trace_thread=thread))
    assert not [t for t in threading.enumerate() if t.name == "hybrid-trace"]


def test_abandoned_reader_leaves_no_thread(scene):
    import gc
    import threading

    from hybrid.video.reader import read_gops

    gops = read_gops(scene, trace_thread=True)
    next(gops)
    gops.close()
    gc.collect()
    assert not [t for t in threading.enumerate() if t.name == "hybrid-trace"]


def test_grid_cells_paints_sizes_in_order_and_gives_up_past_16_sizes():
    """Blocks of several sizes paint in (w, h) order, as the reference does; more sizes
    than any codec has go to the reference painter (None)."""
    from hybrid.video.fields import grid_field, unpack

    h, w = 64, 96
    sizes = [(8 * a, 8 * b) for a in (1, 2, 3, 4, 5) for b in (1, 2, 3, 4)]  # 20 sizes
    v = np.zeros(len(sizes), DT)
    for i, (bw, bh) in enumerate(sizes):  # all overlap at the top-left corner, sources
        v[i] = (-1, bw, bh, bw // 2 + i % 3, bh // 2 + 1, bw // 2, bh // 2, 0, 0, 2)  # in
    assert grid_cells(v, h, w) is None
    few = v[[3, 0, 7, 5]]  # four sizes, given out of order
    np.testing.assert_array_equal(unpack(grid_field(few, h, w)),
                                  mv_field(few, h, w, coviar=True))
