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
from hybrid.video.reader import GOP_SIZE, MV_DTYPE, P_PER_GOP, _Gop
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
                 coviar: bool = True) -> dict[str, np.ndarray]:
    """GOPs ``idx`` (any order, repeats allowed) of the video whose GOP index is
    ``starts`` (:func:`gop_index`), as :func:`hybrid.video.extract.extract_arrays` gives
    them (float32 MV, int16 residual, zero-padded P-frame slots), decoding only those."""
    path = Path(path)
    uniq = sorted(set(idx))
    got = {}
    with open_video(path) as c, TraceWorker() as pool:
        vs = c.streams.video[0]
        vs.codec_context.options = {"flags2": "+export_mvs"}
        for g in uniq:
            assert 0 <= g < len(starts), f"{path}: GOP {g} of {len(starts)}"
            got[g] = _one_gop(c, vs, path, starts, g, accumulate, coviar, pool)
    out = {"iframe": [], "mv": [], "residual": [], "p_frames": []}
    for g in idx:
        gop = got[g]
        h, w, _ = gop.iframe.shape
        mv = np.zeros((P_PER_GOP, h, w, 2), np.float32)
        res = np.zeros((P_PER_GOP, h, w, 3), np.int16)
        mv[:gop.p_frames], res[:gop.p_frames] = gop.mv, gop.residual
        for k, v in (("iframe", gop.iframe), ("mv", mv), ("residual", res),
                     ("p_frames", gop.p_frames)):
            out[k].append(v)
    return {k: np.asarray(v, np.int16) if k == "p_frames" else np.stack(v)
            for k, v in out.items()}


def _one_gop(c, vs, path: Path, starts: list[int], g: int, accumulate: bool, coviar: bool,
             pool: TraceWorker):
    import av

    c.seek(starts[g], stream=vs, backward=True, any_frame=False)
    end = starts[g + 1] if g + 1 < len(starts) else None
    kinds = {int(t): t.name[:1] for t in av.video.frame.PictureType}
    cur = None
    try:
        for frame in c.decode(vs):
            if frame.pts is not None and frame.pts < starts[g]:
                continue  # the seek landed before this GOP (an index without this key)
            if end is not None and frame.pts is not None and frame.pts >= end:
                break
            if frame.is_corrupt:
                raise CorruptVideoError(path, f"GOP {g} has a corrupt frame")
            kind = kinds.get(int(frame.pict_type), "?")
            img = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            if cur is None:
                if kind != "I" or frame.pts != starts[g]:
                    raise UnsupportedStreamError(
                        path, f"seeking to GOP {g} (pts {starts[g]}) gave a "
                              f"{kind}-frame at pts {frame.pts}; the GOP "
                              f"index does not fit this video")
                cur = _Gop(g, -1, img, accumulate, coviar, P_PER_GOP, pool)
                continue
            if kind != "P" or cur.p >= P_PER_GOP:
                raise UnsupportedStreamError(path, f"GOP {g} is not 1 I-frame and up to "
                                                   f"{P_PER_GOP} P-frames: transcode it first")
            sd = frame.side_data.get("MOTION_VECTORS")
            cur.add(img, None if sd is None else np.frombuffer(sd, MV_DTYPE))
    except av.error.FFmpegError as e:
        raise CorruptVideoError(path, f"decoding GOP {g} failed: {e}") from e
    if cur is None:
        raise CorruptVideoError(path, f"GOP {g} (pts {starts[g]}): no frame decoded")
    return cur.close()
