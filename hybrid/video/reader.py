"""The compressed-domain reader: per GOP, the I-frame and, per P-frame, the per-pixel
motion field and the residual, accumulated back to the I-frame as in CoViAR or not.

Conventions (all modes):

- ``mv[..., 0]`` is x, ``mv[..., 1]`` is y, in pixels, the content's motion ``dst - src``
  (a square moving +4 px right per frame has mv x = +4 at the P-frame after it moved).
- ``residual`` is in RGB intensity units: ``frame_t - reference`` (-255..255).
- dtypes: int16 MV and residual in CoViAR mode (its values are integers: exact, and half
  the bytes the tracer writes of float32, the largest cost of extraction at 1280x720),
  float32 in sub-pixel mode.

CoViAR mode (``coviar=True``) reproduces CoViAR's ``coviar_data_loader.c`` exactly:

- per-pixel field of a P-frame: ``dst - src`` of the exported block vector (sub-pel
  truncated by FFmpeg), written on every pixel of the block where both that pixel and its
  source pixel lie inside the frame; 0 elsewhere (intra blocks, out of bounds);
- accumulation keeps ``accu_src``, a map from each pixel of the current frame to a pixel
  of the GOP's I-frame: identity at the I-frame, then per P-frame
  ``accu_src[p] = accu_src_prev[p - field[p]]`` (one gather a frame: linear time);
  accumulated MV = ``p - accu_src[p]``, accumulated residual =
  ``frame_t[p] - iframe[accu_src[p]]``;
- without accumulation: the frame's own field and ``frame_t[p] - frame_{t-1}[p - field[p]]``.

(CoViAR works in BGR; the values per channel are the same, we store RGB.)

Sub-pixel mode (``coviar=False``): the field holds ``-motion / motion_scale`` (half-pel for
MPEG-4) instead of the truncated integer; ``accu_src`` is kept in float (nearest-pixel
gather plus the fractional remainder), and pixels are fetched at the nearest position.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybrid.video import sidedata
from hybrid.video.errors import (
    CorruptVideoError,
    TooShortVideoError,
    TruncatedVideoError,
    UnsupportedStreamError,
)
from hybrid.video.fields import (
    CELL,
    FastTracer,
    Tracer,
    grid_cells,
    mv_field,
    with_offsets,
)
from hybrid.video.probe import open_video
from hybrid.video.worker import Recycler, TraceWorker

GOP_SIZE = 12  # 1 I-frame + 11 P-frames
#: P-frames a GOP: the STMs' timesteps.
P_PER_GOP = GOP_SIZE - 1


def too_short(frames: int, gop_size: int = GOP_SIZE) -> str | None:
    """Why the reader refuses a video of ``frames`` frames (it reads whole GOPs), or None."""
    return f"{frames} frames, fewer than one GOP ({gop_size})" if frames < gop_size else None


@dataclass
class GOP:
    """One group of pictures, starting at an I-frame."""

    index: int  # GOP number in the video, from 0
    start: int  # frame number of the I-frame
    iframe: np.ndarray  # (H, W, 3) uint8 RGB
    mv: np.ndarray  # (P, H, W, 2) pixels, x then y, content motion dst - src (int16
    # in CoViAR mode: integer pixels, exact; float32 in sub-pixel mode)
    residual: np.ndarray  # (P, H, W, 3) RGB units (int16 in CoViAR mode, else float32)
    # with :class:`Reads`: the P-frames (0 = the first) the arrays hold, in order (an
    # output not read has none: length 0), and how many P-frames the GOP has
    slots: tuple[int, ...] | None = None  # None: every P-frame, in order
    p_count: int | None = None  # None: mv's length

    def __post_init__(self) -> None:
        n = self.mv.shape[0] if self.slots is None else len(self.slots)
        assert self.iframe.ndim == 3 and self.iframe.shape[2] == 3, (
            f"iframe must be (H, W, 3), got {self.iframe.shape}")
        assert self.mv.shape[1:] == self.iframe.shape[:2] + (2,) and (
            self.mv.shape[0] in (n, 0)), (
            f"mv {self.mv.shape} does not match iframe {self.iframe.shape}")
        assert self.residual.shape[1:] == self.iframe.shape and (
            self.residual.shape[0] in (n, 0)), (
            f"residual {self.residual.shape} does not match mv {self.mv.shape}")

    @property
    def p_frames(self) -> int:
        """P-frames the GOP has (read or not)."""
        return self.mv.shape[0] if self.p_count is None else self.p_count


@dataclass(frozen=True)
class Reads:
    """What of a GOP the consumer reads, so that the reader does only that work: the
    accumulated MV chain needs every P-frame's vectors but no pixels; a P-frame's
    pixels (its ``rgb24`` conversion) are needed only for its residual; the P-frames
    after the last one read are not decoded at all (the next GOP starts at an I-frame).
    The outputs of the frames read are those of a full read (``tests/test_video_reads.py``).

    What the model reads (``hybrid.model.HybridConfig.reads``): an STM, common STM or
    ConvLSTM every P-frame (its timesteps), MV and residual, of each sampled GOP;
    ``temporal="none"`` the last P-frame only; a modality left out, none of it (the
    reader still traces every P-frame up to the last one read: the accumulated MV
    chain passes through them)."""

    # P-frames read, 0 = the GOP's first, ascending, optionally ending with -1: the
    # GOP's last P-frame, whatever the GOP's length (a short final GOP too); None: all;
    # (): none (the I-frame alone)
    slots: tuple[int, ...] | None = None
    mv: bool = True  # the read P-frames' MV
    residual: bool = True  # their residual

    def __post_init__(self) -> None:
        if self.slots is None:
            return
        s = tuple(int(v) for v in self.slots)
        pos = s[:-1] if s and s[-1] == -1 else s
        if any(v < 0 for v in pos) or list(pos) != sorted(set(pos)):
            raise ValueError(f"slots {self.slots}: P-frame indices >= 0, ascending, without "
                             f"repeats, optionally ending with -1 (the last P-frame)")
        object.__setattr__(self, "slots", s)

    @property
    def everything(self) -> bool:
        return self.slots is None and self.mv and self.residual


ALL = Reads()


class FastFrames:
    """The reader's per-frame fast path, shared by the sequential reader and the GOP
    seeker (:mod:`hybrid.video.seek`): a frame's type, its pixels as FFmpeg's ``rgb24``
    conversion gives them, exactly what a plain ``frame.to_ndarray(format="rgb24")``
    gives (every mode reads these), as a view of FFmpeg's buffer (rows padded to its
    alignment, like ``to_ndarray``'s), and its exported vectors.

    Converted with one swscale context for the whole video and one thread (the
    conversion is bit-identical; ``to_ndarray`` builds a context, and a thread pool for
    it, per frame: 0.2-0.3 ms a 340x256 frame on 2 cores)."""

    def __init__(self, path: Path, gop_size: int) -> None:
        import av
        from av.video.reformatter import VideoReformatter

        self.path, self.gop_size = path, gop_size
        self.kinds = {int(t): t.name[:1] for t in av.video.frame.PictureType}  # once
        self.rgb24 = VideoReformatter()

    def kind(self, frame, n: int) -> str:
        """'I' or 'P'; UnsupportedStreamError naming frame ``n`` for any other type."""
        kind = self.kinds.get(frame.pict_type, "?")
        if kind not in "IP":
            raise UnsupportedStreamError(
                self.path, f"frame {n} is a {kind}-frame; the reader needs I/P frames only "
                           f"(MPEG-4 GOP {self.gop_size}, no B-frames): transcode it first")
        return kind

    def rgb(self, frame) -> np.ndarray:
        """(H, W, 3) uint8 RGB, a view of the converted frame's buffer."""
        plane = self.rgb24.reformat(frame, format="rgb24", threads=1).planes[0]
        return np.ndarray((frame.height, frame.width, 3), np.uint8, plane, 0,
                          (plane.line_size, 3, 1))

    @staticmethod
    def vectors(frame) -> np.ndarray | None:
        """The frame's exported motion vectors (``sidedata.MV_DTYPE``), None if it has none
        (:func:`hybrid.video.sidedata.vectors`)."""
        return sidedata.vectors(frame)


def _decode(path: Path, gop_size: int) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
    """Yields (frame type, (H, W, 3) uint8 RGB, exported vectors or None) per frame
    (:class:`FastFrames`), and raises typed errors for unsupported, corrupt and
    truncated streams."""
    frames = _frames(path, gop_size)
    fast = next(frames)
    for kind, frame, vectors in frames:
        yield kind, fast.rgb(frame), vectors


def _frames(path: Path, gop_size: int, skip: list[bool] | None = None) -> Iterator:
    """:class:`FastFrames` first, then (frame type, FFmpeg's frame, exported vectors or
    None) per frame, raising typed errors for unsupported, corrupt and truncated
    streams. Decoding single-threaded as in a plain PyAV decode (the MPEG-4 decoder has
    no slice threads). While ``skip[0]`` is set, the packets up to the next key frame
    (the next GOP's I-frame) are not decoded (counted as frames, yielded as ``("S",
    None, None)``)."""
    import av

    with open_video(path) as c:
        vs = c.streams.video[0]
        vs.codec_context.options = {"flags2": "+export_mvs"}
        declared = int(vs.frames or 0)
        fast = FastFrames(path, gop_size)
        yield fast
        n, corrupt_at = 0, None
        try:
            for pkt in c.demux(vs):
                if skip is not None and skip[0] and pkt.size and not pkt.is_keyframe:
                    yield "S", None, None
                    n += 1
                    continue
                for frame in pkt.decode():
                    if corrupt_at is not None:
                        raise CorruptVideoError(path, f"frame {corrupt_at} is corrupt "
                                                      f"(damaged data in the stream)")
                    kind = fast.kind(frame, n)
                    if frame.is_corrupt:
                        corrupt_at = n
                    yield kind, frame, fast.vectors(frame)
                    n += 1
        except av.error.FFmpegError as e:
            raise CorruptVideoError(path, f"decoding failed after {n} frames: {e}") from e
        if corrupt_at is not None or (declared and n < declared):
            raise TruncatedVideoError(path, f"stream ends early: {n} frames decoded"
                                            + (f" of {declared} declared" if declared else
                                               ", the last one incomplete"))


def read_gops(path: str | Path, accumulate: bool = True, coviar: bool = True,
              gop_size: int = GOP_SIZE, reads: Reads = ALL,
              trace_thread: bool = False) -> Iterator[GOP]:
    """Yield the video's GOPs in order: I-frame, per-P-frame MV field and residual.

    ``accumulate``: trace MV and residual back to the GOP's I-frame (CoViAR) or give
    each P-frame's own. ``coviar``: CoViAR's integer-pixel definition (exact) or the
    sub-pixel one. A GOP has at most ``gop_size - 1`` P-frames; the last one of a video
    may have fewer. Raises a :class:`~hybrid.video.errors.VideoError` naming ``path``
    for bad input (a GOP already yielded stays valid). In CoViAR mode a second thread
    traces a GOP's P-frames, in order, while the later ones decode (both release the
    GIL); a GOP whose values the consumer dropped lends its arrays to a later GOP
    (:class:`~hybrid.video.worker.Recycler`). ``reads``: only part of each GOP is read
    (:class:`Reads`; accumulated CoViAR mode): the GOPs hold only that, done with only
    the work it needs."""
    with TraceWorker(thread=trace_thread) as worker:
        yield from _read_gops(Path(path), accumulate, coviar, gop_size, worker, reads)


def _read_gops(path: Path, accumulate: bool, coviar: bool, gop_size: int,
               pool: TraceWorker, reads: Reads = ALL) -> Iterator[GOP]:
    recycler = Recycler()
    cur: _Gop | None = None
    n, index = 0, 0
    skip = [False]
    frames = _frames(path, gop_size, skip)
    fast = next(frames)
    for kind, frame, vectors in frames:
        if kind == "I":
            if cur is not None:
                done, cur = cur.close(), None  # hold no GOP while the next one allocates
                yield done
                del done
                index += 1
            cur = _Gop(index, n, fast.rgb(frame), accumulate, coviar, gop_size - 1, pool,
                       recycler, reads=reads, rgb=fast.rgb)
            skip[0] = cur.done  # no P-frame read: none decoded
        else:
            if cur is None:
                raise UnsupportedStreamError(path, "stream does not start with an I-frame")
            if cur.count >= gop_size - 1:
                raise UnsupportedStreamError(
                    path, f"GOP at frame {cur.start} has more than {gop_size - 1} "
                          f"P-frames (not GOP {gop_size}): transcode it first")
            if kind == "S":  # not decoded: after the GOP's last P-frame read
                cur.skipped += 1
            else:
                cur.add(frame, vectors)
                skip[0] = cur.done
        n += 1
    if short := too_short(n, gop_size):
        raise TooShortVideoError(path, short)
    if cur is not None:
        yield cur.close()


class _Gop:
    """A GOP being decoded: outputs preallocated for ``slots`` P-frames. In CoViAR mode
    its P-frames are traced in order on ``pool`` while the next ones decode; the
    decoder waits for them only when the GOP closes. With :class:`Reads` (accumulated
    CoViAR mode) only the P-frames read get outputs, and only those whose residual is
    read get their pixels converted (``rgb``); a GOP's last P-frame, when read as such
    (slot -1), is kept undecoded-to-RGB until the GOP ends and emitted then."""

    def __init__(self, index: int, start: int, img: np.ndarray, accumulate: bool,
                 coviar: bool, slots: int, pool: TraceWorker,
                 recycler: Recycler | None = None,
                 outputs: tuple[np.ndarray, np.ndarray] | None = None,
                 reads: Reads = ALL, rgb=None) -> None:
        """``outputs``: (mv, residual) to trace into, (slots, H, W, 2|3) int16, C-order
        (CoViAR mode; the caller's final arrays, no copy); else from ``recycler``.
        ``rgb``: frame -> (H, W, 3) uint8 (:meth:`FastFrames.rgb`): ``add`` takes
        FFmpeg's frames, else their pixels."""
        h, w, _ = img.shape
        self.index, self.start, self.coviar, self.p = index, start, coviar, 0
        self.skipped, self.reads, self.rgb = 0, reads, rgb
        self.pool = pool
        self.iframe = img = np.ascontiguousarray(img)  # rows unpadded (a copy if padded)
        if not reads.everything:
            if not (coviar and accumulate):
                raise ValueError("reading part of a GOP needs accumulated CoViAR mode")
            if reads.slots is not None and max(reads.slots, default=-1) >= slots:
                raise ValueError(f"slots {reads.slots}: a GOP has at most {slots} P-frames")
        wanted = range(slots) if reads.slots is None else reads.slots
        self.want = {v: k for k, v in enumerate(wanted) if v >= 0}  # slot -> output
        self.last = reads.slots is not None and reads.slots[-1:] == (-1,)
        self.held = None  # the latest P-frame while it may be the last one read
        n = len(wanted)
        self.mv, self.res = outputs if outputs is not None else (recycler or Recycler()).take(
            n, h, w, np.int16 if coviar else np.float32)
        self.tracer = (FastTracer(img, accumulate) if coviar
                       else Tracer(img, accumulate, coviar=False))

    @property
    def count(self) -> int:
        """P-frames seen so far, decoded or skipped."""
        return self.p + self.skipped

    @property
    def done(self) -> bool:
        """Whether no later P-frame of this GOP is read (they need no decoding)."""
        return not self.last and not any(v >= self.p for v in self.want)

    def add(self, frame, vectors: np.ndarray | None) -> None:
        """The next P-frame (FFmpeg's frame when the GOP was given ``rgb``, else its
        (H, W, 3) uint8 pixels) and its exported vectors."""
        img = frame if self.rgb is None else None
        h, w = self.iframe.shape[:2]
        if self.coviar:
            field, cell = grid_cells(vectors, h, w), CELL
            if field is None:  # a block off the 8-px grid: the reference painter
                field, cell = with_offsets(mv_field(vectors, h, w, coviar=True)), 1
            k = self.want.get(self.p)
            mv = self.mv[k] if k is not None and self.reads.mv else None
            res = self.res[k] if k is not None and self.reads.residual else None
            if img is None and (res is not None or not self.tracer.accumulate):
                img = self.rgb(frame)
            self.pool.submit(self.tracer.step, img, field, mv, res, cell)
            if self.last:
                self.held = frame
        else:
            if img is None:
                img = self.rgb(frame)
            self.mv[self.p], self.res[self.p] = self.tracer.step(
                img, mv_field(vectors, h, w, coviar=False))
        self.p += 1

    def wait(self) -> None:
        if self.coviar:
            self.pool.wait()  # re-raises what the tracer raised

    def close(self) -> GOP:
        if self.reads.everything:
            self.wait()
            return GOP(self.index, self.start, self.iframe, self.mv[:self.p],
                       self.res[:self.p])
        slots = [v for v in self.want if v < self.p]  # a prefix: slots ascend
        if self.last and self.p:  # the GOP's last P-frame, known now
            k = len(slots)
            img = (self.held if self.rgb is None else self.rgb(self.held)) \
                if self.reads.residual else None
            self.pool.submit(self.tracer.emit, img, self.mv[k] if self.reads.mv else None,
                             self.res[k] if self.reads.residual else None)
            slots.append(self.p - 1)
        self.held = None
        self.wait()
        n = len(slots)
        return GOP(self.index, self.start, self.iframe, self.mv[:n if self.reads.mv else 0],
                   self.res[:n if self.reads.residual else 0], tuple(slots), self.count)
