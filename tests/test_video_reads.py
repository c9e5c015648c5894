"""Reading part of each GOP (:class:`hybrid.video.reader.Reads`): the outputs of the
P-frames read equal those of the full read, exactly, at an odd size with a short final
GOP; only the frames whose residual is read are converted to RGB; the P-frames after
the last one read are not decoded."""
import numpy as np
import pytest

from hybrid.video import reader
from hybrid.video.reader import Reads, read_gops
from hybrid.video.synth import SynthConfig, render_video
from hybrid.video.transcode import EncodeConfig, encode_mpeg4

SIZE = (130, 94)  # (W, H): neither a multiple of 8 nor of 16
FRAMES = 12 * 3 + 6  # the last GOP has 5 P-frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    p = tmp_path_factory.mktemp("reads") / "v.avi"
    encode_mpeg4(render_video(4, 5, SynthConfig(size=SIZE, frames=FRAMES, jitter=0.5)), p,
                 EncodeConfig(size=SIZE))
    full = [(g.iframe.copy(), g.mv.copy(), g.residual.copy())
            for g in read_gops(p, trace_thread=True)]  # the tracing thread: as before
    assert [m.shape[0] for _, m, _ in full] == [11, 11, 11, 5]
    assert all(np.abs(m).max() > 0 and np.abs(r).max() > 0 for _, m, r in full)
    return p, full


def expected_slots(slots, p):
    if slots is None:
        return list(range(p))
    pos = [v for v in slots if 0 <= v < p]
    return pos + ([p - 1] if slots[-1:] == (-1,) and p else [])


READS = [Reads(slots=(0, 3, 10)), Reads(slots=(2, 5, -1)), Reads(slots=(-1,)),
         Reads(slots=(10, -1)), Reads(slots=(4,), residual=False),
         Reads(residual=False), Reads(mv=False), Reads(slots=(1, 6), mv=False),
         Reads(slots=())]


@pytest.mark.parametrize("reads", READS, ids=str)
@pytest.mark.parametrize("thread", [False, True], ids=["inline", "trace-thread"])
def test_frames_read_equal_the_full_read(video, reads, thread, monkeypatch):
    path, full = video
    conversions, kinds = [], []
    rgb, frames = reader.FastFrames.rgb, reader._frames

    def counting_rgb(self, frame):
        conversions.append(1)
        return rgb(self, frame)

    def counting_frames(*args):
        for item in frames(*args):
            if isinstance(item, tuple):
                kinds.append(item[0])
            yield item

    monkeypatch.setattr(reader.FastFrames, "rgb", counting_rgb)
    monkeypatch.setattr(reader, "_frames", counting_frames)
    gops = list(read_gops(path, reads=reads, trace_thread=thread))
    assert len(gops) == len(full)
    want_rgb, want_decoded = 0, 0
    for g, (iframe, mv, res) in zip(gops, full):
        slots = expected_slots(reads.slots, mv.shape[0])
        assert g.slots == tuple(slots) and g.p_frames == mv.shape[0]
        np.testing.assert_array_equal(g.iframe, iframe)
        if reads.mv:
            np.testing.assert_array_equal(g.mv, mv[slots])
        else:
            assert g.mv.shape[0] == 0
        if reads.residual:
            np.testing.assert_array_equal(g.residual, res[slots])
        else:
            assert g.residual.shape[0] == 0
        want_rgb += 1 + (len(slots) if reads.residual else 0)
        last = (mv.shape[0] - 1 if reads.slots is None or reads.slots[-1:] == (-1,)
                else max(reads.slots, default=-1))
        want_decoded += 1 + min(last + 1, mv.shape[0])
    assert len(conversions) == want_rgb, "a frame converted to RGB that is not read"
    assert kinds.count("I") + kinds.count("P") == want_decoded
    assert len(kinds) == FRAMES  # skipped packets still counted


@pytest.mark.parametrize("slots", [(3, 1), (-1, 2), (2, 2), (-2,), (-1, -1)])
def test_bad_slots_are_refused(slots):
    with pytest.raises(ValueError, match="slots"):
        Reads(slots=slots)


def test_partial_reads_need_accumulated_coviar_mode(video):
    with pytest.raises(ValueError, match="accumulated CoViAR"):
        list(read_gops(video[0], accumulate=False, reads=Reads(slots=(-1,))))
    with pytest.raises(ValueError, match="at most 11"):
        list(read_gops(video[0], reads=Reads(slots=(11,))))


def test_emit_gives_what_step_wrote():
    """The tracer's deferred outputs (the GOP's last P-frame, known once it ends) equal
    those its step writes, in int16 (MV packed as words) and float32."""
    from videotools import padded, random_vectors

    from hybrid.video.fields import CELL, FastTracer, grid_cells

    rng = np.random.default_rng(3)
    h, w = 42, 74
    frames = rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8)
    for dt in (np.int16, np.float32):
        a, b = FastTracer(frames[0], True), FastTracer(frames[0], True)
        for t in range(1, 4):
            cells = grid_cells(random_vectors(rng, h, w, 9), h, w)
            mv, res = np.empty((h, w, 2), dt), np.empty((h, w, 3), dt)
            a.step(frames[t], cells, mv, res, CELL)
            b.step(None, cells, None, None, CELL)
            mv2, res2 = np.zeros((h, w, 2), dt), np.zeros((h, w, 3), dt)
            b.emit(padded(frames[t], 5), mv2, res2)
            np.testing.assert_array_equal(mv2, mv)
            np.testing.assert_array_equal(res2, res)


@pytest.mark.parametrize("temporal,modalities,slots,mv,residual", [
    ("stm", ("i", "mv", "r"), None, True, True), ("lstm", ("i", "r"), None, False, True),
    ("none", ("i", "mv", "r"), (-1,), True, True), ("common", ("mv", "r"), None, True, True),
    ("none", ("i", "mv"), (-1,), True, False)])
def test_the_model_says_what_it_reads(temporal, modalities, slots, mv, residual):
    from hybrid.model import HybridConfig

    r = HybridConfig(temporal=temporal, modalities=modalities).reads()
    assert (r.slots, r.mv, r.residual) == (slots, mv, residual)


def test_decoded_frames_do_not_pile_up(video):
    """Reading a frame's vectors leaves no cycle between the frame and PyAV's side-data
    container (PyAV before 18.1.1 kept every decoded frame allocated until a full
    collection): with the cycle collector off, the frames alive stay a handful, not one
    per frame."""
    import gc

    import av

    def alive():
        return sum(isinstance(o, av.VideoFrame) for o in gc.get_objects())

    gc.collect()
    before = alive()
    gc.disable()
    try:
        counts = []
        for g in read_gops(video[0]):
            counts.append(alive() - before)
            del g
    finally:
        gc.enable()
    assert max(counts) <= 6, f"decoded frames alive per GOP: {counts}"


def test_seeking_reads_equal_with_and_without_the_tracing_thread(video):
    from hybrid.video.seek import gop_index, read_gops_at

    starts = gop_index(video[0])
    idx = [3, 0, 2, 0]
    a = read_gops_at(video[0], starts, idx)
    b = read_gops_at(video[0], starts, idx, trace_thread=True)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for k, g in enumerate(idx):
        p = int(a["p_frames"][k])
        np.testing.assert_array_equal(a["mv"][k, :p], video[1][g][1])
        np.testing.assert_array_equal(a["residual"][k, :p], video[1][g][2])


def test_one_output_buffer_reused_every_frame_gives_the_same_values():
    """The trace is kept in the int16 MV output it was written to; a caller that passes
    that same buffer again for the next frame must not have the trace read while it is
    overwritten."""
    from videotools import random_vectors

    from hybrid.video.fields import CELL, FastTracer, grid_cells

    rng = np.random.default_rng(8)
    h, w = 50, 66
    frames = rng.integers(0, 256, (6, h, w, 3), dtype=np.uint8)
    fresh, reused = FastTracer(frames[0], True), FastTracer(frames[0], True)
    mv1, res1 = np.empty((h, w, 2), np.int16), np.empty((h, w, 3), np.int16)
    for t in range(1, 6):
        cells = grid_cells(random_vectors(rng, h, w, 9), h, w)
        mv, res = np.empty((h, w, 2), np.int16), np.empty((h, w, 3), np.int16)
        fresh.step(frames[t], cells, mv, res, CELL)
        reused.step(frames[t], cells, mv1, res1, CELL)
        np.testing.assert_array_equal(mv1, mv, err_msg=f"MV at frame {t}")
        np.testing.assert_array_equal(res1, res, err_msg=f"residual at frame {t}")
    assert np.abs(mv).max() > 0
