"""Re-encode any video FFmpeg reads into the form the compressed-domain reader needs:
MPEG-4 Part 2, GOP 12 (1 I + 11 P), no B-frames, fixed quantiser, 340x256 by default
(CoViAR's ``ffmpeg -vf scale=340:256 -q:v 1 -c:v mpeg4``), in process with PyAV."""
from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from hybrid.video.errors import CorruptVideoError
from hybrid.video.probe import format_for, open_video, probe

log = logging.getLogger(__name__)

GOP = 12  # frames per GOP: 1 I-frame + 11 P-frames (CoViAR, the paper)
DEFAULT_SIZE = (340, 256)  # (width, height) of CoViAR's preprocessing
DEFAULT_QSCALE = 2  # fixed quantiser; CoViAR's `-q:v 1` ends up as q 2 (default qmin)


@dataclass(frozen=True)
class EncodeConfig:
    size: tuple[int, int] = DEFAULT_SIZE  # (width, height) of the output
    gop: int = GOP  # frames per GOP; the reader expects 12
    qscale: int = DEFAULT_QSCALE  # fixed quantiser, 1 (best) .. 31
    rate: int = 25  # frame rate written into the container

    def __post_init__(self) -> None:
        w, h = self.size
        assert w >= 16 and h >= 16 and w % 2 == 0 and h % 2 == 0, (
            f"size must be even and >= 16 px, got {w}x{h}")
        assert 1 <= self.qscale <= 31, f"qscale must be in 1..31, got {self.qscale}"
        assert self.gop >= 2, f"gop must be >= 2, got {self.gop}"


def _open_writer(target, fmt: str | None, cfg: EncodeConfig):
    import av

    out = av.open(target, "w", format=fmt)
    st = out.add_stream("mpeg4", rate=cfg.rate)
    st.width, st.height = cfg.size
    st.pix_fmt = "yuv420p"
    cc = st.codec_context
    cc.gop_size = cfg.gop
    cc.max_b_frames = 0
    cc.qscale = True  # fixed quantiser: global_quality = qscale * FF_QP2LAMBDA below
    cc.options = {"qmin": str(cfg.qscale), "qmax": str(cfg.qscale)}
    return out, st


def encode_mpeg4(frames: Iterable[np.ndarray], path: str | Path | None = None,
                 cfg: EncodeConfig = EncodeConfig()) -> bytes | None:
    """Encode RGB frames (each (H, W, 3) uint8, already ``cfg.size``) as MPEG-4 Part 2.
    Writes ``path`` (container from its suffix; ``.m4v`` = raw stream) or returns the
    bytes of an AVI when ``path`` is None."""
    import av

    target = io.BytesIO() if path is None else str(path)
    fmt = "avi" if path is None else format_for(Path(path))
    out, st = _open_writer(target, fmt, cfg)
    with out:
        for t, img in enumerate(frames):
            assert img.shape == (cfg.size[1], cfg.size[0], 3) and img.dtype == np.uint8, (
                f"frame {t}: expected ({cfg.size[1]}, {cfg.size[0]}, 3) uint8, "
                f"got {img.shape} {img.dtype}")
            fr = av.VideoFrame.from_ndarray(img, format="rgb24")
            fr.pts = t
            out.mux(st.encode(fr))
        out.mux(st.encode(None))
    return target.getvalue() if path is None else None


def is_coviar_form(path: str | Path, size: tuple[int, int] = DEFAULT_SIZE,
                   gop: int = GOP) -> bool:
    """True when ``path`` already is MPEG-4 Part 2 at ``size`` with an I-frame every
    ``gop`` frames and P-frames otherwise (then transcoding would only lose quality)."""
    info = probe(path, with_types=True)
    if info.codec != "mpeg4" or (info.width, info.height) != tuple(size):
        return False
    return all((t == "I") == (i % gop == 0) and t in "IP" for i, t in enumerate(info.types))


def transcode(src: str | Path, dst: str | Path | None = None,
              cfg: EncodeConfig = EncodeConfig(), force: bool = False) -> bytes | None:
    """Re-encode ``src`` (anything FFmpeg reads) to MPEG-4 Part 2, GOP ``cfg.gop``, no
    B-frames, fixed quantiser, ``cfg.size``. Writes ``dst`` or returns AVI bytes.
    When ``src`` is already in that form and ``force`` is False, it is copied as is.
    Raises a :class:`~hybrid.video.errors.VideoError` for bad input."""
    import av

    src = Path(src)
    if not force and is_coviar_form(src, cfg.size, cfg.gop):
        log.info("%s already MPEG-4 GOP %d at %dx%d: copied", src, cfg.gop, *cfg.size)
        data = src.read_bytes()
        if dst is None:
            return data
        Path(dst).write_bytes(data)
        return None

    target = io.BytesIO() if dst is None else str(dst)
    fmt = "avi" if dst is None else format_for(Path(dst))
    w, h = cfg.size
    with open_video(src) as inp:
        vs = inp.streams.video[0]
        out, st = _open_writer(target, fmt, cfg)
        with out:
            try:
                for t, frame in enumerate(inp.decode(vs)):
                    fr = frame.reformat(w, h, "yuv420p", interpolation="BICUBIC")
                    fr.pict_type = av.video.frame.PictureType.NONE  # let the GOP decide
                    fr.pts, fr.time_base = t, Fraction(1, cfg.rate)
                    out.mux(st.encode(fr))
            except av.error.FFmpegError as e:
                raise CorruptVideoError(src, f"decoding failed while transcoding: {e}") from e
            out.mux(st.encode(None))
    return target.getvalue() if dst is None else None
