"""Open a video with PyAV and turn what FFmpeg says about bad input into typed errors;
``probe`` reads codec, size, frame types and GOP structure."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybrid.video.errors import (
    EmptyVideoError,
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    VideoNotFoundError,
)

# Leading bytes of containers/streams FFmpeg reads: a file that starts like one of these
# but cannot be opened was cut short or damaged, not "not a video".
_MAGIC = {b"RIFF": "AVI", b"\x1aE\xdf\xa3": "Matroska/WebM", b"\x00\x00\x01\xb0": "MPEG-4",
          b"\x00\x00\x01\xb6": "MPEG-4", b"\x00\x00\x01\xba": "MPEG-PS", b"FLV": "FLV"}


def _looks_like_video(path: Path) -> str | None:
    head = path.open("rb").read(12)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide"):
        return "MP4/MOV"
    return next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)


def _riff_shortfall(path: Path) -> int:
    """Bytes missing from a RIFF (AVI/WAV) file according to its own header, else 0."""
    head = path.open("rb").read(8)
    if len(head) < 8 or not head.startswith(b"RIFF"):
        return 0
    return max(0, int.from_bytes(head[4:8], "little") + 8 - path.stat().st_size)


def format_for(path: Path) -> str | None:
    """FFmpeg's container format for a path: raw MPEG-4 streams (.m4v, CoViAR's .cmp)
    carry no header that names them; everything else is detected."""
    return "m4v" if path.suffix.lower() in (".m4v", ".cmp") else None


def open_video(path: str | Path):
    """``av.open`` for reading, with the first video stream checked. Raises
    VideoNotFoundError, EmptyVideoError, NotAVideoError, TruncatedVideoError or
    NoVideoStreamError, each naming ``path``."""
    import av

    path = Path(path)
    if path.is_dir():
        raise VideoNotFoundError(path, "is a folder, not a video file")
    if not path.is_file():
        raise VideoNotFoundError(path, "no such file")
    if path.stat().st_size == 0:
        raise EmptyVideoError(path, "file is empty (0 bytes)")
    short = _riff_shortfall(path)
    if short:
        raise TruncatedVideoError(path, f"AVI/RIFF header declares {short} more bytes than "
                                        f"the file has (truncated)")
    try:
        container = av.open(str(path), "r", format=format_for(path))
    except (av.error.InvalidDataError, av.error.EOFError, ValueError) as e:
        kind = _looks_like_video(path)
        if kind:
            raise TruncatedVideoError(path, f"starts like {kind} but FFmpeg cannot parse "
                                            f"it (truncated or damaged): {e}") from e
        raise NotAVideoError(path, f"not a video FFmpeg can read: {e}") from e
    except av.error.FFmpegError as e:
        raise NotAVideoError(path, f"FFmpeg cannot open it: {e}") from e
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise NoVideoStreamError(path, f"no video stream (streams: {', '.join(kinds)})")
    return container


@dataclass
class VideoInfo:
    path: str
    container: str  # FFmpeg's demuxer name
    codec: str  # e.g. mpeg4, h264
    width: int
    height: int
    frames_declared: int  # what the container says (0 = unknown, e.g. a raw .m4v)
    types: str = ""  # one letter per decoded frame: I, P, B, ...
    corrupt: int = 0  # frames the decoder flagged as corrupt
    gops: list[int] = field(default_factory=list)  # frames per GOP (split at I-frames)
    mv_stats: dict = field(default_factory=dict)  # block vectors, content motion dst - src

    def as_dict(self) -> dict:
        return {"path": self.path, "container": self.container, "codec": self.codec,
                "width": self.width, "height": self.height, "frames": self.frames,
                "frames_declared": self.frames_declared, "gops": len(self.gops),
                "gop_sizes": self.gops, "frame_types": self.types,
                "corrupt_frames": self.corrupt, "motion_vectors": self.mv_stats}

    @property
    def frames(self) -> int:
        return len(self.types)


def _mv_stats(vecs: list) -> dict:
    if not vecs:
        return {"vectors": 0}
    v = np.concatenate(vecs)
    d = np.stack([v["dst_x"] - v["src_x"], v["dst_y"] - v["src_y"]], 1).astype(np.float64)
    mag = np.hypot(d[:, 0], d[:, 1])
    return {"vectors": int(len(v)), "frames_with_vectors": len(vecs),
            "block_sizes": sorted({f"{a}x{b}" for a, b in zip(v["w"].tolist(),
                                                              v["h"].tolist())}),
            "moving_fraction": float((mag > 0).mean()), "mean_x": float(d[:, 0].mean()),
            "mean_y": float(d[:, 1].mean()), "mean_magnitude": float(mag.mean()),
            "max_magnitude": float(mag.max())}


def probe(path: str | Path, with_types: bool = True, with_mvs: bool = False) -> VideoInfo:
    """Codec, size and (when ``with_types``) the frame type of every frame, decoded
    without converting pixels; ``with_mvs`` adds statistics of the exported vectors."""
    import av

    with open_video(path) as c:
        vs = c.streams.video[0]
        if with_mvs:
            vs.codec_context.options = {"flags2": "+export_mvs"}
        vecs = []
        cc = vs.codec_context
        info = VideoInfo(str(path), c.format.name, cc.name, cc.width, cc.height,
                         int(vs.frames or 0))
        if with_types:
            letters = []
            try:
                for frame in c.decode(vs):
                    letters.append(av.video.frame.PictureType(frame.pict_type).name[:1])
                    info.corrupt += bool(frame.is_corrupt)
                    sd = frame.side_data.get("MOTION_VECTORS") if with_mvs else None
                    if sd is not None:
                        vecs.append(sd.to_ndarray())
            except av.error.FFmpegError:
                info.corrupt += 1
            info.types = "".join(letters)
            starts = [i for i, t in enumerate(info.types) if t == "I"] + [len(info.types)]
            info.gops = [b - a for a, b in zip(starts, starts[1:])]
        if with_mvs:
            info.mv_stats = _mv_stats(vecs)
    return info
