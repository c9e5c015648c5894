"""Re-encode any video FFmpeg reads into the form the compressed-domain reader needs:
MPEG-4 Part 2, GOP 12 (1 I + 11 P), no B-frames, fixed quantiser, 340x256 by default
(CoViAR's ``ffmpeg -vf scale=340:256 -q:v 1 -c:v mpeg4``), in process with PyAV."""
from __future__ import annotations

import io
import logging
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from deploy.atomic import scratch_dir
from hybrid.video.errors import CorruptVideoError, UnsupportedStreamError, VideoError
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
        if not (w >= 16 and h >= 16 and w % 2 == 0 and h % 2 == 0):
            raise ValueError(f"size must be even and >= 16 px, got {w}x{h}")
        if not (1 <= self.qscale <= 31):
            raise ValueError(f"qscale must be in 1..31, got {self.qscale}")
        if self.gop < 2:
            raise ValueError(f"gop must be >= 2, got {self.gop}")


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


def is_coviar_form(path: str | Path, size: tuple[int, int] | None = DEFAULT_SIZE,
                   gop: int = GOP) -> bool:
    """True when ``path`` already is MPEG-4 Part 2 at ``size`` (None: any size) with an
    I-frame every ``gop`` frames and P-frames otherwise (then transcoding would only lose
    quality)."""
    info = probe(path, with_types=True)
    if info.codec != "mpeg4" or (size is not None
                                 and (info.width, info.height) != tuple(size)):
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


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """In the main thread, SIGTERM raises SystemExit while the block runs (so ``finally``
    clauses, such as removing a temporary file, run); the previous handler comes back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def as_mpeg4(src: str | Path, size: tuple[int, int] | None = None,
             allow_transcode: bool = True, cfg: EncodeConfig = EncodeConfig()
             ) -> Iterator[Path]:
    """A path the compressed-domain reader reads, for any video FFmpeg reads.

    ``src`` itself when it already is MPEG-4 Part 2, GOP ``cfg.gop``, I/P frames only
    (at ``size`` when given, any size when None); otherwise ``src`` transcoded in
    process to a temporary file (at ``size``, default ``cfg.size``, 340x256), which is
    removed when the block ends, whatever ends it (an error, Ctrl-C, SIGTERM in the main
    thread). ``allow_transcode=False`` raises UnsupportedStreamError instead. A
    VideoError raised in the block about the temporary file names ``src``.

        with as_mpeg4("phone.mp4") as path:
            gops = list(read_gops(path))
    """
    src = Path(src)
    if is_coviar_form(src, size, cfg.gop):
        yield src
        return
    info = probe(src, with_types=True)
    if not allow_transcode:
        raise UnsupportedStreamError(
            src, f"{info.codec} {info.width}x{info.height}, frame types "
                 f"{_types_summary(info.types)}: not MPEG-4 Part 2 GOP {cfg.gop} with I/P "
                 f"frames only" + (f" at {size[0]}x{size[1]}" if size else "")
                 + "; transcoding was turned off (--no-transcode)")
    target = EncodeConfig(size=tuple(size or cfg.size), gop=cfg.gop, qscale=cfg.qscale,
                          rate=cfg.rate)
    with _sigterm_raises(), scratch_dir("transcode") as tmp:
        dst = Path(tmp) / (src.stem + ".avi")
        log.info("transcoding %s (%s %dx%d) to MPEG-4 GOP %d at %dx%d", src, info.codec,
                 info.width, info.height, target.gop, *target.size)
        transcode(src, dst, target, force=True)
        try:
            yield dst
        except VideoError as e:
            if e.path != str(dst):
                raise
            raise type(e)(src, f"{e.problem} (after transcoding to MPEG-4)") from e


def _types_summary(types: str) -> str:
    kinds = sorted(set(types))
    return "".join(kinds) if kinds else "none"
