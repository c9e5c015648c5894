"""Reading chosen GOPs of a video without decoding the others: an index of the GOPs'
I-frames (their timestamps, from the demuxer's packets, nothing decoded), and a reader
that seeks to each wanted GOP's I-frame and decodes that GOP alone.

Exact: an MPEG-4 Part 2 stream in the reader's form (GOP 12, no B-frames) has closed
GOPs, a P-frame references only frames of its own GOP, so a GOP decoded after a seek
has the pixels and exported motion vectors of the same GOP decoded in sequence
(:func:`hybrid.video.reader.read_gops`; ``tests/test_data_paths.py`` checks it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybrid.video.errors import CorruptVideoError, TooShortVideoError, UnsupportedStreamError
from hybrid.video.probe import open_video
from hybrid.video.reader import GOP_SIZE, P_PER_GOP, FastFrames, _Gop
from hybrid.video.worker import TraceWorker


def gop_index(path: str | Path) -> list[int]:
    """The presentation timestamps (in the video stream's time base) of the video's
    I-frames, in order: one per GOP. Reads packets only."""
    path = Path(path)
    with open_video(path) as c:
        vs = c.streams.video[0]
        starts, n = [], 0
        for pkt in c.demux(vs):
            if pkt.size == 0:  # the demuxer's flush packet
                continue
            if pkt.is_keyframe:
                starts.append(int(pkt.pts if pkt.pts is not None else pkt.dts))
            n += 1
    if n < GOP_SIZE:
        raise TooShortVideoError(path, f"{n} frames, fewer than one GOP ({GOP_SIZE})")
    if not starts:
        raise UnsupportedStreamError(path, "no I-frame in the stream")
    return starts


def read_gops_at(path: str | Path, starts: list[int], idx: list[int], accumulate: bool = True,
                 coviar: bool = True, reuse: dict[str, np.ndarray] | None = None,
                 trace_thread: bool = False) -> dict[str, np.ndarray]:
    """GOPs ``idx`` (any order, repeats allowed) of the video whose GOP index is
    ``starts`` (:func:`gop_index`), as :func:`hybrid.video.extract.extract_arrays` gives
    them (int16 MV in CoViAR mode, float32 in sub-pixel mode, int16 residual,
    zero-padded P-frame slots), decoding only those (each once, in order). ``reuse``:
    arrays an earlier call returned, written over when their shapes fit (a loader's
    clips: fresh pages cost a fault each, about 10 % of a clip at 340x256).
    ``trace_thread``: as :func:`hybrid.video.reader.read_gops`'s."""
    path = Path(path)
    with open_video(path) as c, TraceWorker(thread=trace_thread) as pool:
        return GopSeeker(path, c, starts, pool, accumulate, coviar).read(idx, reuse)


class GopSeeker:
    """An open video and its GOP index: :meth:`read` decodes chosen GOPs only, each
    from its I-frame to the next GOP's, on the reader's fast path (one ``rgb24``
    converter, views of FFmpeg's buffers, the compiled tracer on ``pool``'s thread:
    :class:`hybrid.video.reader.FastFrames`, ``_Gop``). ``decoded`` counts the frames
    the decoder gave (a seek may land before the wanted GOP: those count too)."""

    def __init__(self, path: Path, container, starts: list[int], pool: TraceWorker,
                 accumulate: bool = True, coviar: bool = True) -> None:
        self.path, self.container, self.starts, self.pool = path, container, starts, pool
        self.accumulate, self.coviar = accumulate, coviar
        self.stream = container.streams.video[0]
        self.stream.codec_context.options = {"flags2": "+export_mvs"}
        self.fast = FastFrames(path, GOP_SIZE)
        self.decoded = 0

    def read(self, idx: list[int], reuse: dict[str, np.ndarray] | None = None
             ) -> dict[str, np.ndarray]:
        """GOPs ``idx`` stacked and zero-padded like ``extract_arrays``' arrays (into
        ``reuse`` when its shapes fit). In CoViAR mode each GOP is traced straight into
        its first slot of the result."""
        for g in idx:
            if not 0 <= g < len(self.starts):
                raise ValueError(f"{self.path}: GOP {g} of {len(self.starts)}")
        first = {g: idx.index(g) for g in sorted(set(idx))}
        out = None
        for g, k in first.items():
            gop = self._one_gop(g, None if out is None or not self.coviar
                                else (out["mv"][k], out["residual"][k]))
            if out is None:
                out = self._allocate(len(idx), gop, reuse)
            out["iframe"][k], out["p_frames"][k] = gop.iframe, gop.p_frames
            if gop.mv.base is None or not np.shares_memory(gop.mv, out["mv"][k]):
                out["mv"][k, :gop.p_frames] = gop.mv
                out["residual"][k, :gop.p_frames] = gop.residual
            out["mv"][k, gop.p_frames:] = 0  # a reused array's slots hold an older clip
            out["residual"][k, gop.p_frames:] = 0
        for k, g in enumerate(idx):
            if k != first[g]:
                for name in out:
                    out[name][k] = out[name][first[g]]
        return out

    def _allocate(self, n: int, gop, reuse: dict[str, np.ndarray] | None
                  ) -> dict[str, np.ndarray]:
        h, w, _ = gop.iframe.shape
        want = {"iframe": ((n, h, w, 3), np.uint8),
                "mv": ((n, P_PER_GOP, h, w, 2), np.int16 if self.coviar else np.float32),
                "residual": ((n, P_PER_GOP, h, w, 3), np.int16),
                "p_frames": ((n,), np.int16)}
        if reuse is not None and all(
                k in reuse and reuse[k].shape == shape and reuse[k].dtype == dtype
                and reuse[k].flags.c_contiguous and reuse[k].flags.writeable
                for k, (shape, dtype) in want.items()):
            return {k: reuse[k] for k in want}
        return {k: np.empty(shape, dtype) for k, (shape, dtype) in want.items()}

    def _one_gop(self, g: int, outputs: tuple[np.ndarray, np.ndarray] | None):
        import av

        path, starts, fast = self.path, self.starts, self.fast
        end = starts[g + 1] if g + 1 < len(starts) else None
        cur = None
        try:
            for frame in self._frames(starts[g], end):
                if frame.pts is not None and frame.pts < starts[g]:
                    continue  # the seek landed before this GOP (an index without this key)
                if frame.is_corrupt:
                    raise CorruptVideoError(path, f"GOP {g} has a corrupt frame")
                kind = fast.kind(frame, -1 if cur is None else cur.p + 1)
                if cur is None:
                    if kind != "I" or frame.pts != starts[g]:
                        raise UnsupportedStreamError(
                            path, f"seeking to GOP {g} (pts {starts[g]}) gave a "
                                  f"{kind}-frame at pts {frame.pts}; the GOP "
                                  f"index does not fit this video")
                    cur = _Gop(g, -1, fast.rgb(frame), self.accumulate, self.coviar,
                               P_PER_GOP, self.pool, outputs=outputs, rgb=fast.rgb)
                    continue
                if kind != "P" or cur.p >= P_PER_GOP:
                    raise UnsupportedStreamError(
                        path, f"GOP {g} is not 1 I-frame and up to {P_PER_GOP} "
                              f"P-frames: transcode it first")
                cur.add(frame, fast.vectors(frame))
        except av.error.FFmpegError as e:
            raise CorruptVideoError(path, f"decoding GOP {g} failed: {e}") from e
        if cur is None:
            raise CorruptVideoError(path, f"GOP {g} (pts {starts[g]}): no frame decoded")
        return cur.close()

    def _frames(self, start: int, end: int | None):
        """The decoded frames from the seek to ``start`` up to the packet at ``end``
        (None: the stream's end), without decoding that next GOP's I-frame: packets are
        sent until one at ``end``; a decoder holding frames back (none does for the
        reader's form, no B-frames) is drained then."""
        c, vs = self.container, self.stream
        c.seek(start, stream=vs, backward=True, any_frame=False)
        sent = got = 0
        for pkt in c.demux(vs):
            if end is not None and pkt.pts is not None and pkt.pts >= end:
                break
            sent += pkt.size > 0
            for frame in pkt.decode():
                got += 1
                self.decoded += 1
                yield frame
        else:
            return  # the stream's end: its flush packet drained the decoder
        if got < sent:
            for frame in vs.codec_context.decode(None):
                self.decoded += 1
                yield frame
