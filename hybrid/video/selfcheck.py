"""PyAV self-check for ``hybrid doctor``: encode MPEG-4, decode with exported vectors."""
from __future__ import annotations

import io

import numpy as np


def encode_moving_square(frames: int = 12, size: tuple[int, int] = (64, 48),
                         step: int = 2) -> bytes:
    """A raw MPEG-4 Part 2 stream (GOP 12, no B-frames, fixed quantiser) of a textured
    16x16 square moving ``step`` px right per frame on a flat background."""
    import av

    w, h = size
    buf = io.BytesIO()
    with av.open(buf, "w", format="m4v") as out:
        st = out.add_stream("mpeg4", rate=25)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.codec_context.gop_size = 12
        st.codec_context.max_b_frames = 0
        st.codec_context.qscale = True
        tex = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
        for t in range(frames):
            img = np.full((h, w, 3), 90, np.uint8)
            img[16:32, 8 + step * t : 24 + step * t] = tex
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = t
            out.mux(st.encode(frame))
        out.mux(st.encode(None))
    return buf.getvalue()


def decode_block_motion(data: bytes) -> tuple[list[str], list[np.ndarray]]:
    """Frame types and, per frame, the exported vectors as (n, 4) int arrays of
    ``dst_x, dst_y, dx, dy`` where ``(dx, dy) = dst - src`` (the content's motion)."""
    import av

    types, motions = [], []
    with av.open(io.BytesIO(data), "r", format="m4v") as inp:
        vs = inp.streams.video[0]
        vs.codec_context.options = {"flags2": "+export_mvs"}
        for frame in inp.decode(vs):
            types.append(av.video.frame.PictureType(frame.pict_type).name)
            sd = frame.side_data.get("MOTION_VECTORS")
            if sd is None:
                motions.append(np.zeros((0, 4), np.int64))
                continue
            mv = sd.to_ndarray()
            motions.append(np.stack([mv["dst_x"], mv["dst_y"], mv["dst_x"] - mv["src_x"],
                                     mv["dst_y"] - mv["src_y"]], axis=1).astype(np.int64))
    return types, motions


def check_pyav_mpeg4(frames: int = 12) -> tuple[bool, str]:
    """Encode a moving square as MPEG-4 Part 2 in memory and decode it with
    ``+export_mvs``: one I-frame then P-frames that carry the square's motion."""
    import av

    types, motions = decode_block_motion(encode_moving_square(frames))
    if len(types) != frames or types[0] != "I" or any(t != "P" for t in types[1:]):
        return False, f"unexpected frame types {''.join(t[0] for t in types)}"
    moving = sum(int((m[:, 2] != 0).sum()) for m in motions)
    if moving == 0:
        return False, "decoded P-frames carry no non-zero motion vectors"
    return True, (f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}): mpeg4 "
                  f"I+{frames - 1}P, {moving} moving vectors")
